/* nt's image found in a capture's kernel space by its headers
 * (vm-captures §7.2): below a kernel code address, or by a scan of the
 * kernel half.  Page tables come from the capture, so they may be crafted:
 * one table that maps every address, or one page everywhere.  The scan
 * remembers tables whose whole span held no MZ header and skips them when
 * they come again, and every search in one open shares one budget. */
#include <string.h>

#include "bytes.h"
#include "capture.h"
#include "ctx.h"
#include "pe.h"

/* Pages looked at over every search of one open: a real kernel's nt is
 * found within a few thousand. */
#define NT_SEARCH_PAGES (1u << 20)
/* MZ headers parsed as images over one open. */
#define NT_SEARCH_IMAGES 4096u
/* How far below a kernel code address nt's MZ header may be. */
#define MAX_IMAGE_BACKSCAN (64u << 20)

void dl_nt_search_init(dl_nt_search *s)
{
    s->pages_left = NT_SEARCH_PAGES;
    s->images_left = NT_SEARCH_IMAGES;
}

/* Is the image at base nt?  Its export directory names the kernel:
 * ntoskrnl.exe, or ntkrnlpa.exe / ntkrnlmp.exe / ntkrpamp.exe on x86. */
static int is_nt_image(dl_dump *d, uint64_t base)
{
    dl_image img;
    uint8_t dir[0x10];
    char name[16] = {0};
    if (dl_image_load(d, base, 0, &img) != DL_OK || !img.export_rva || img.export_size < 0x28 ||
        dl_vmem_read(&d->vm, d->ctx, base + img.export_rva, dir, sizeof dir) != DL_OK ||
        dl_vmem_read(&d->vm, d->ctx, base + dl_le32(dir + 0x0C), name, 12) != DL_OK)
        return 0;
    size_t n = strnlen(name, sizeof name - 1);
    return n >= 8 && dl_ascii_caseeq(name + n - 4, ".exe") && (name[0] | 0x20) == 'n' && (name[1] | 0x20) == 't';
}

uint64_t dl_capture_image_below(dl_dump *d, uint64_t va, dl_nt_search *s)
{
    for (uint64_t back = 0; back < MAX_IMAGE_BACKSCAN && va >= back && s->pages_left; back += 0x1000) {
        s->pages_left--;
        uint64_t base = (va & ~0xFFFull) - back;
        uint8_t mz[2];
        if (dl_vmem_read(&d->vm, d->ctx, base, mz, 2) != DL_OK || mz[0] != 'M' || mz[1] != 'Z' || !s->images_left)
            continue;
        s->images_left--;
        dl_image img;
        if (dl_image_load(d, base, 0, &img) == DL_OK && va - base < img.size)
            return base;
    }
    dl_ctx_clear_error(d->ctx);
    return 0;
}

/* ---- the scan ---- */

static size_t barren_slot(int level, uint64_t table)
{
    return (size_t)(((table | (uint64_t)level) * 0x9E3779B97F4A7C15ull) >> 54);
}

static int barren_has(const dl_nt_memo *m, int level, uint64_t table)
{
    return m->barren[barren_slot(level, table)] == (table | (uint64_t)level);
}

/* Note the tables va goes through at levels [first, top); a table left
 * behind whole and clean is barren. */
static void track_tables(const dl_vmem *vm, dl_nt_memo *m, uint64_t va, const uint64_t *path, int first, int top)
{
    for (int l = first; l < top; l++) {
        int shift = dl_vmem_entry_shift(vm, l + 1);
        uint64_t start = va >> shift << shift;
        if (m->open[l].live && m->open[l].start == start)
            continue;
        if (m->open[l].live && m->open[l].whole && m->open[l].clean)
            m->barren[barren_slot(l, m->open[l].table)] = m->open[l].table | (uint64_t)l;
        m->open[l].table = path[l];
        m->open[l].start = start;
        m->open[l].live = 1;
        m->open[l].whole = va == start;
        m->open[l].clean = 1;
    }
}

/* The page at pa, mapped at va: 1 when it is nt's header.  An MZ page
 * leaves every open table unclean. */
static int page_is_nt(dl_dump *d, dl_nt_search *s, dl_nt_memo *m, uint64_t pa, uint64_t va)
{
    uint8_t mz[2];
    if (dl_physmem_read(&d->pm, d->ctx, pa, mz, 2) != DL_OK || mz[0] != 'M' || mz[1] != 'Z')
        return 0;
    for (int l = 0; l <= DL_MAX_LEVELS; l++)
        m->open[l].clean = 0;
    if (!s->images_left)
        return 0;
    s->images_left--;
    return is_nt_image(d, va);
}

/* Page-aligned MZ headers in [from, to): the first that is nt. */
static uint64_t nt_in_range(dl_dump *d, uint64_t from, uint64_t to, dl_nt_search *s, dl_nt_memo *m)
{
    dl_vmem *vm = &d->vm;
    int top = dl_vmem_levels(vm);
    memset(m->open, 0, sizeof m->open);
    for (uint64_t va = from, next; va && va < to && s->pages_left && s->images_left; va = next) {
        s->pages_left--;
        uint64_t path[DL_MAX_LEVELS + 1] = {0};
        dl_xlat x;
        dl_status st = dl_vmem_translate_path(vm, d->ctx, va, &x, path);
        if (!x.level) { /* refused before any table was read */
            next = dl_vmem_next_candidate(vm, va, &x);
            continue;
        }
        int skip = 0;
        for (int l = top - 1; l >= x.level && !skip; l--)
            if (barren_has(m, l, path[l]))
                skip = l;
        track_tables(vm, m, va, path, skip ? skip + 1 : x.level, top);
        if (skip) {
            int shift = dl_vmem_entry_shift(vm, skip + 1);
            next = ((va >> shift) + 1) << shift;
        } else if (st != DL_OK) {
            next = dl_vmem_next_candidate(vm, va, &x);
        } else if (x.page_size > DL_PAGE_SIZE) {
            /* A large page: only its present pages, read directly. */
            uint64_t pa0 = x.pa & ~(uint64_t)(DL_PAGE_SIZE - 1);
            uint64_t left = (x.page_size - (va & (x.page_size - 1))) >> DL_PAGE_SHIFT;
            next = va + (left << DL_PAGE_SHIFT);
            for (uint64_t pfn = dl_physmem_next_present(&d->pm, pa0 >> DL_PAGE_SHIFT);
                 pfn - (pa0 >> DL_PAGE_SHIFT) < left && s->pages_left; pfn = dl_physmem_next_present(&d->pm, pfn + 1)) {
                s->pages_left--;
                uint64_t page_va = va + ((pfn << DL_PAGE_SHIFT) - pa0);
                if (page_is_nt(d, s, m, pfn << DL_PAGE_SHIFT, page_va))
                    return page_va;
            }
        } else {
            if (page_is_nt(d, s, m, x.pa, va))
                return va;
            next = va + DL_PAGE_SIZE;
        }
    }
    return 0;
}

/* x64 kernels have lived in 0xFFFFF800'00000000-0xFFFFF87F'FFFFFFFF since
 * Windows 2003; that slot is searched first. */
uint64_t dl_capture_nt_scan(dl_dump *d, dl_nt_search *s)
{
    dl_nt_memo *m = &s->memo;
    uint64_t nt;
    memset(m->barren, 0, sizeof m->barren);
    dl_ctx_clear_error(d->ctx);
    if (d->info.bits == 32)
        nt = nt_in_range(d, 0x80000000ull, 0x100000000ull, s, m);
    else if (!(nt = nt_in_range(d, 0xFFFFF80000000000ull, 0xFFFFF88000000000ull, s, m)) &&
             !(nt = nt_in_range(d, 0xFFFF800000000000ull, 0xFFFFF80000000000ull, s, m)))
        nt = nt_in_range(d, 0xFFFFF88000000000ull, 0xFFFFFFFFFFFFF000ull, s, m);
    dl_ctx_clear_error(d->ctx);
    return nt;
}
