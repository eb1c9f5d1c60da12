// SPDX-License-Identifier: GPL-3.0-only
// xcsave.h must compile in the same translation unit as Xen's <xenguest.h>, and xcsave's
// entry points must have exactly stock xc_domain_save's and xc_domain_restore's types. The layouts xcsave shares with
// libxenguest (struct save_callbacks, struct precopy_stats,
// struct restore_callbacks) are mirrored in Rust
// (src/abi/c.rs) with the same sizes and offsets asserted there.
#include <stddef.h>
#include <xenctrl.h>
#include <xenguest.h>
#include <xcsave.h>

_Static_assert(__builtin_types_compatible_p(__typeof__(&xcsave_domain_save),
                                            __typeof__(&xc_domain_save)),
               "xcsave_domain_save must have xc_domain_save's type");
_Static_assert(__builtin_types_compatible_p(__typeof__(&xcsave_domain_restore),
                                            __typeof__(&xc_domain_restore)),
               "xcsave_domain_restore must have xc_domain_restore's type");
_Static_assert(sizeof(struct restore_callbacks) == 56, "struct restore_callbacks size");
_Static_assert(offsetof(struct restore_callbacks, checkpoint) == 24, "checkpoint offset");
_Static_assert(offsetof(struct restore_callbacks, restore_results) == 40,
               "restore_results offset");
_Static_assert(offsetof(struct restore_callbacks, data) == 48, "data offset");
_Static_assert(sizeof(struct save_callbacks) == 56, "struct save_callbacks size");
_Static_assert(offsetof(struct save_callbacks, suspend) == 0, "suspend offset");
_Static_assert(offsetof(struct save_callbacks, precopy_policy) == 8, "precopy_policy offset");
_Static_assert(offsetof(struct save_callbacks, postcopy) == 16, "postcopy offset");
_Static_assert(offsetof(struct save_callbacks, checkpoint) == 24, "checkpoint offset");
_Static_assert(offsetof(struct save_callbacks, wait_checkpoint) == 32, "wait_checkpoint offset");
_Static_assert(offsetof(struct save_callbacks, switch_qemu_logdirty) == 40,
               "switch_qemu_logdirty offset");
_Static_assert(offsetof(struct save_callbacks, data) == 48, "data offset");
_Static_assert(sizeof(struct precopy_stats) == 24, "struct precopy_stats size");
_Static_assert(offsetof(struct precopy_stats, total_written) == 8, "total_written offset");
_Static_assert(offsetof(struct precopy_stats, dirty_count) == 16, "dirty_count offset");
_Static_assert(sizeof(xc_stream_type_t) == sizeof(unsigned int), "xc_stream_type_t size");

int header_compat_anchor(void);
int header_compat_anchor(void)
{
    return XC_STREAM_COLO;
}
