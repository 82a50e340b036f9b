#include <stdio.h>

#include "cli.h"

const char *arch_name(dl_arch a)
{
    switch (a) {
    case DL_ARCH_X86:
        return "x86";
    case DL_ARCH_X86_PAE:
        return "x86-pae";
    case DL_ARCH_X64:
        return "x64";
    case DL_ARCH_ARM64:
        return "arm64";
    }
    return "?";
}
