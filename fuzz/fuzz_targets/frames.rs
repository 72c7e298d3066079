#![no_main]
// See shmproc_process::fuzzing::fuzz_frames.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shmproc_process::fuzzing::fuzz_frames(data));
