/* The search for nt's header in a capture with no vCPU state, no IDT and no
 * plain KDBG (vm-captures §7.2): a raw x64 image whose only top table is
 * self-mapped and maps nt behind many page-directory entries that share one
 * page table, as a crafted capture would.  The scan skips a shared table it
 * has seen whole without an MZ header, so it must still reach nt; one that
 * held an MZ header is looked at again each time.
 *
 * Only nt's header is here, no KDBG: dl_open then fails for want of the
 * KDBG, which it reaches only after a CR3 that maps nt was accepted; with
 * no nt it fails earlier, naming the CR3.  The two messages tell which. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dumpleak.h"

#define PAGE 4096
#define PTE(pfn) (((uint64_t)(pfn) << 12) | 3)

enum { P_PML4, P_PDPT, P_PD, P_SHARED_PT, P_JUNK, P_NT_PT, P_NT, P_OTHER_MZ, P_COUNT };

static void put64(uint8_t *img, int page, int index, uint64_t v)
{
    memcpy(img + (size_t)page * PAGE + (size_t)index * 8, &v, 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

/* A PE32+ header whose export directory names the image. */
static void image_header(uint8_t *p, const char *name)
{
    p[0] = 'M', p[1] = 'Z';
    put32(p + 0x3C, 0x80);
    memcpy(p + 0x80, "PE\0\0", 4);
    p[0x98] = 0x0B, p[0x99] = 0x02; /* optional-header magic 0x20B */
    put32(p + 0x98 + 56, 0x2000);   /* SizeOfImage */
    put32(p + 0x98 + 108, 1);       /* NumberOfRvaAndSizes */
    put32(p + 0x98 + 112, 0x200);   /* export directory RVA */
    put32(p + 0x98 + 116, 0x28);    /* and size */
    put32(p + 0x200 + 0x0C, 0x300); /* its Name RVA */
    strcpy((char *)p + 0x300, name);
}

/* shared: PD entries before nt's that point at the shared page table;
 * shared_mz: that table maps an MZ page (not nt) at its first entry. */
static const char *open_error(int shared, int shared_mz, const char *nt_name)
{
    uint8_t *img = calloc(P_COUNT, PAGE);
    cr_assert(img);
    put64(img, P_PML4, 0x1ED, PTE(P_PML4)); /* the self-map */
    put64(img, P_PML4, 0x1F0, PTE(P_PDPT)); /* 0xFFFFF800'00000000 */
    put64(img, P_PDPT, 0, PTE(P_PD));
    for (int i = 0; i < shared; i++)
        put64(img, P_PD, i, PTE(P_SHARED_PT));
    put64(img, P_PD, shared, PTE(P_NT_PT)); /* nt at 0xFFFFF800'00000000 + shared * 2 MiB */
    for (int i = 0; i < 512; i++)
        put64(img, P_SHARED_PT, i, PTE(P_JUNK));
    if (shared_mz)
        put64(img, P_SHARED_PT, 0, PTE(P_OTHER_MZ));
    memset(img + (size_t)P_JUNK * PAGE, 0x11, PAGE);
    put64(img, P_NT_PT, 0, PTE(P_NT));
    put64(img, P_NT_PT, 1, PTE(P_JUNK));
    image_header(img + (size_t)P_NT * PAGE, nt_name);
    image_header(img + (size_t)P_OTHER_MZ * PAGE, "hal.dll");

    char path[64];
    snprintf(path, sizeof path, "/tmp/dl-ntscan-%d.raw", (int)getpid());
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(img, PAGE, P_COUNT, f) == P_COUNT && fclose(f) == 0);
    free(img);

    static char msg[512];
    dl_ctx *ctx = dl_ctx_new();
    dl_open_options opts = {.no_cache = 1};
    dl_dump *d = NULL;
    dl_status st = dl_open(ctx, path, &opts, &d);
    cr_assert_eq(st, DL_ECORRUPT, "%s", dl_ctx_error(ctx));
    snprintf(msg, sizeof msg, "%s", dl_ctx_error(ctx));
    dl_ctx_free(ctx);
    unlink(path);
    return msg;
}

#define NT_FOUND "no Windows kernel data (KDBG) found"
#define NO_CR3 "no CR3 candidate translates kernel addresses"

Test(ntscan, nt_behind_a_shared_clean_table)
{
    cr_expect(strstr(open_error(0, 0, "ntoskrnl.exe"), NT_FOUND));
    /* 511 directory entries, one table: its 512 pages are looked at once. */
    cr_expect(strstr(open_error(511, 0, "ntoskrnl.exe"), NT_FOUND));
}

Test(ntscan, nt_behind_a_shared_table_with_an_mz_page)
{
    /* The table is looked at again each time: 300 x 512 pages and 300
     * images, within the search's budget. */
    cr_expect(strstr(open_error(300, 1, "ntkrnlmp.exe"), NT_FOUND));
}

Test(ntscan, no_nt_no_cr3)
{
    /* The control: the same tables with hal.dll where nt was. */
    cr_expect(strstr(open_error(511, 0, "hal.dll"), NO_CR3));
    cr_expect(strstr(open_error(300, 1, "hal.dll"), NO_CR3));
}
