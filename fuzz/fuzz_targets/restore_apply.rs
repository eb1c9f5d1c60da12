// SPDX-License-Identifier: GPL-3.0-only
//! The restore engine's apply path (`receive::domain_restore`) over the fake guest of
//! `testkit::restore`: any byte string from the other host must end in a clean outcome
//! (complete, failover, or -1 with an errno and a logged reason), never a panic or an abort;
//! no writable mapping may outlive the restore; no page past the pfn limit may be written;
//! the COLO back channel gets whole records only. The input's layout and the checks are
//! `xcsave::receive::fuzzing::apply_input`'s (the unit tests replay this corpus through it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xcsave::receive::fuzzing::apply_input(data);
});
