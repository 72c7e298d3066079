#![no_main]
// See shmproc_shm::fuzzing::fuzz_header.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shmproc_shm::fuzzing::fuzz_header(data));
