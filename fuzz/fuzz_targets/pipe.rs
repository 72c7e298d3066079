#![no_main]
// See shmproc_channel::fuzzing::fuzz_pipe.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shmproc_channel::fuzzing::fuzz_pipe(data));
