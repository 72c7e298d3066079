//! Inputs for the stable driver: a small seeded generator and a mutator in the spirit of
//! libFuzzer's (bit flips, interesting integers, inserts, deletes, splices), without coverage
//! feedback — the seeds carry the structure, the mutations break it.

/// A splitmix64 generator: fast, seedable, reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    ///
    /// # Examples
    /// ```
    /// let (mut a, mut b) = (shmproc_fuzz::Rng::new(7), shmproc_fuzz::Rng::new(7));
    /// assert_eq!(a.next_u64(), b.next_u64());
    /// ```
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Values that sit on the edges of the checks under test: sizes, capacities, powers of two and
/// the ends of the integer ranges.
const INTERESTING: [u64; 30] = [
    0,
    1,
    2,
    3,
    7,
    8,
    9,
    16,
    63,
    64,
    65,
    127,
    128,
    255,
    256,
    448,
    512,
    1024,
    4096,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    i64::MAX as u64,
    1 << 63,
    u64::MAX - 8,
    u64::MAX - 1,
    u64::MAX,
];

/// A mutant of `base` (or, now and then, random bytes): one to four stacked mutations, some
/// taking material from `pool`; at most `max_len` bytes.
pub fn mutant(rng: &mut Rng, base: &[u8], pool: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    if rng.below(64) == 0 {
        let len = rng.below(max_len.min(1024) + 1);
        return (0..len).map(|_| rng.next_u64() as u8).collect();
    }
    let mut data = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, &mut data, pool);
    }
    data.truncate(max_len);
    data
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
    if data.is_empty() {
        data.push(rng.next_u64() as u8);
        return;
    }
    let at = rng.below(data.len());
    match rng.below(11) {
        0 => data[at] ^= 1 << rng.below(8),
        1 => data[at] = rng.next_u64() as u8,
        2 => data[at] = INTERESTING[rng.below(INTERESTING.len())] as u8,
        3 => put_word(data, at, 8, INTERESTING[rng.below(INTERESTING.len())]),
        4 => put_word(data, at, 4, INTERESTING[rng.below(INTERESTING.len())]),
        5 => {
            // Nudge a word: off-by-a-few is where bounds checks go wrong.
            let width = [2, 4, 8][rng.below(3)];
            let delta = rng.below(33) as u64;
            let word = get_word(data, at, width);
            let nudged = if rng.below(2) == 0 {
                word.wrapping_add(delta)
            } else {
                word.wrapping_sub(delta)
            };
            put_word(data, at, width, nudged);
        }
        6 => {
            let n = 1 + rng.below(16);
            let byte = rng.next_u64() as u8;
            let fill = rng.below(2) == 0;
            let bytes: Vec<u8> = (0..n)
                .map(|_| if fill { byte } else { rng.next_u64() as u8 })
                .collect();
            data.splice(at..at, bytes);
        }
        7 => {
            let end = (at + 1 + rng.below(32)).min(data.len());
            data.drain(at..end);
        }
        8 => {
            // Copy a piece of the input over another place in it.
            let from = rng.below(data.len());
            let n = (1 + rng.below(16))
                .min(data.len() - from)
                .min(data.len() - at);
            let piece = data[from..from + n].to_vec();
            data[at..at + n].copy_from_slice(&piece);
        }
        9 => data.truncate(at),
        _ => {
            // Splice: this input's head, another one's tail.
            if let Some(other) = pool.get(rng.below(pool.len().max(1))) {
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
}

fn get_word(data: &[u8], at: usize, width: usize) -> u64 {
    let mut bytes = [0u8; 8];
    let n = width.min(data.len() - at);
    bytes[..n].copy_from_slice(&data[at..at + n]);
    u64::from_le_bytes(bytes)
}

/// Writes the low `width` bytes of `value` (little-endian) at `at`, clipped to the input.
fn put_word(data: &mut [u8], at: usize, width: usize, value: u64) {
    let n = width.min(data.len() - at);
    data[at..at + n].copy_from_slice(&value.to_le_bytes()[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutants_stay_within_bounds_and_differ() {
        let mut rng = Rng::new(1);
        let base = vec![0u8; 100];
        let pool = vec![base.clone(), vec![1; 10]];
        let mut changed = 0;
        for _ in 0..10_000 {
            let m = mutant(&mut rng, &base, &pool, 120);
            assert!(m.len() <= 120);
            changed += usize::from(m != base);
        }
        assert!(changed > 9_000, "{changed}");
    }
}
