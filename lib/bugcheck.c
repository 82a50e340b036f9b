/* Bugcheck names, written from the public bug-check reference
 * (learn.microsoft.com "Bug check code reference"). */
#include <stddef.h>
#include <stdio.h>

#include "dumpleak.h"

static const struct {
    uint32_t code;
    const char *name;
} names[] = {
    {0x0A, "IRQL_NOT_LESS_OR_EQUAL"},
    {0x19, "BAD_POOL_HEADER"},
    {0x1A, "MEMORY_MANAGEMENT"},
    {0x1E, "KMODE_EXCEPTION_NOT_HANDLED"},
    {0x24, "NTFS_FILE_SYSTEM"},
    {0x3B, "SYSTEM_SERVICE_EXCEPTION"},
    {0x3F, "NO_MORE_SYSTEM_PTES"},
    {0x41, "MUST_SUCCEED_POOL_EMPTY"},
    {0x4A, "IRQL_GT_ZERO_AT_SYSTEM_SERVICE"},
    {0x50, "PAGE_FAULT_IN_NONPAGED_AREA"},
    {0x7A, "KERNEL_DATA_INPAGE_ERROR"},
    {0x7E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED"},
    {0x7F, "UNEXPECTED_KERNEL_MODE_TRAP"},
    {0x8E, "KERNEL_MODE_EXCEPTION_NOT_HANDLED"},
    {0x9F, "DRIVER_POWER_STATE_FAILURE"},
    {0xA0, "INTERNAL_POWER_ERROR"},
    {0xC2, "BAD_POOL_CALLER"},
    {0xC4, "DRIVER_VERIFIER_DETECTED_VIOLATION"},
    {0xC5, "DRIVER_CORRUPTED_EXPOOL"},
    {0xCC, "PAGE_FAULT_IN_FREED_SPECIAL_POOL"},
    {0xCD, "PAGE_FAULT_BEYOND_END_OF_ALLOCATION"},
    {0xCE, "DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS"},
    {0xD1, "DRIVER_IRQL_NOT_LESS_OR_EQUAL"},
    {0xD5, "DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL"},
    {0xE2, "MANUALLY_INITIATED_CRASH"},
    {0xEF, "CRITICAL_PROCESS_DIED"},
    {0xF4, "CRITICAL_OBJECT_TERMINATION"},
    {0x101, "CLOCK_WATCHDOG_TIMEOUT"},
    {0x119, "VIDEO_SCHEDULER_INTERNAL_ERROR"},
    {0x124, "WHEA_UNCORRECTABLE_ERROR"},
    {0x133, "DPC_WATCHDOG_VIOLATION"},
    {0x139, "KERNEL_SECURITY_CHECK_FAILURE"},
    {0x13A, "KERNEL_MODE_HEAP_CORRUPTION"},
    {0x154, "UNEXPECTED_STORE_EXCEPTION"},
    {0x15F, "CONNECTED_STANDBY_WATCHDOG_TIMEOUT_LIVEDUMP"},
    {0x161, "LIVE_SYSTEM_DUMP"},
    {0x1A1, "WIN32K_CALLOUT_WATCHDOG_LIVEDUMP"},
    {0xDEADDEAD, "MANUALLY_INITIATED_CRASH1"},
};

const char *dl_bugcheck_name(uint32_t code)
{
    static _Thread_local char with_m[80];
    int m = (code & 0x10000000u) != 0;
    uint32_t base = code == 0xDEADDEAD ? code : code & ~0x10000000u;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == base) {
            if (!m || base == 0xDEADDEAD)
                return names[i].name;
            snprintf(with_m, sizeof with_m, "%s_M", names[i].name);
            return with_m;
        }
    return NULL;
}
