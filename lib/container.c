/* Container stage: recognise the file, decode the DUMP_HEADER32/64 and build
 * the physical map.  Header offsets: dump-format.md §1.2/§1.3 (mindumpdef.h,
 * kdmp-parser static_asserts, vol3 crash.json/crash64.json). */
#include <string.h>

#include "bytes.h"
#include "ctx.h"
#include "dump.h"

typedef struct header_layout {
    uint32_t dtb, pfn_db, module_list, process_head, machine, processors, bugcheck, params;
    uint32_t kdbg, dump_type, required_space, system_time, system_uptime, comment;
    uint32_t mini_dump_fields, product_type, suite_mask, attributes;
} header_layout;

static const header_layout layout32 = {0x10,  0x14,  0x18,  0x1C,  0x20,  0x24,  0x28,  0x2C,  0x60,
                                       0xF88, 0xFA0, 0xFC0, 0xFB8, 0x820, 0xF8C, 0xF94, 0xF98, 0x8A0};
static const header_layout layout64 = {0x10,  0x18,  0x20,  0x28,   0x30,  0x34,   0x38,   0x40,   0x80,
                                       0xF98, 0xFA0, 0xFA8, 0x1030, 0xFB0, 0x1038, 0x1040, 0x1044, 0x1050};

static const char *dump_type_name(uint32_t t)
{
    switch (t) {
    case 1:
        return "full";
    case 2:
        return "kernel";
    case 4:
        return "triage";
    case 5:
        return "bitmap-full";
    case 6:
        return "bitmap-kernel";
    case 8:
        return "rdmp-kernel";
    case 9:
        return "rdmp-kernel-user";
    case 10:
        return "rdmp-full";
    default:
        return NULL;
    }
}

/* Other things users feed us, named precisely (dump-format §1.1, §6). */
static dl_status not_a_dump(dl_dump *d, const uint8_t *m, size_t n)
{
    dl_ctx *ctx = d->ctx;
    if (n >= 4 && !memcmp(m, "MDMP", 4))
        return dl_fail(ctx, DL_EUNSUPPORTED, "user-mode minidump (MDMP), not a kernel dump");
    if (n >= 4 && (!memcmp(m, "HIBR", 4) || !memcmp(m, "hibr", 4) || !memcmp(m, "WAKE", 4) || !memcmp(m, "RSTR", 4)))
        return dl_fail(ctx, DL_EUNSUPPORTED, "hibernation file (hiberfil.sys), not a crash dump");
    if (n >= 4 && !memcmp(m, "MSCF", 4))
        return dl_fail(ctx, DL_EUNSUPPORTED,
                       "CAB archive: unpack the dump first (compressed input is not supported yet)");
    if (n >= 4 && !memcmp(m, "PK\x03\x04", 4))
        return dl_fail(ctx, DL_EUNSUPPORTED,
                       "ZIP archive: unpack the dump first (compressed input is not supported yet)");
    if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
        return dl_fail(ctx, DL_EUNSUPPORTED,
                       "gzip stream: unpack the dump first (compressed input is not supported yet)");
    if (n >= 4 && !memcmp(m,
                          "\x7f"
                          "ELF",
                          4))
        return dl_fail(ctx, DL_EUNSUPPORTED, "ELF core (hypervisor memory capture): not supported by this build yet");
    if (n >= 8 && (!memcmp(m, "KDUMP   ", 8) || !memcmp(m, "makedumpfile", n < 12 ? n : 12)))
        return dl_fail(ctx, DL_EUNSUPPORTED, "kdump-compressed capture: not supported by this build yet");
    if (n >= 4 && !memcmp(m, "PAGE", 4))
        return dl_fail(ctx, DL_ECORRUPT, "unknown dump signature at offset 0x4 (expected DUMP or DU64 after PAGE)");
    if (n == 0)
        return dl_fail(ctx, DL_ECORRUPT, "empty file");
    return dl_fail(ctx, DL_ECORRUPT, "not a Windows crash dump (no PAGEDUMP/PAGEDU64 signature at offset 0)");
}

static void parse_header(dl_dump *d, const uint8_t *h)
{
    dl_info *in = &d->info;
    const header_layout *L = in->bits == 64 ? &layout64 : &layout32;
    int b = in->bits;
    in->major_version = dl_le32(h + 0x8);
    in->minor_version = dl_le32(h + 0xC);
    in->directory_table_base = dl_leptr(h + L->dtb, b);
    in->pfn_database = dl_leptr(h + L->pfn_db, b);
    in->ps_loaded_module_list = dl_leptr(h + L->module_list, b);
    in->ps_active_process_head = dl_leptr(h + L->process_head, b);
    in->machine_type = dl_le32(h + L->machine);
    in->processors = dl_le32(h + L->processors);
    in->bugcheck_code = dl_le32(h + L->bugcheck);
    in->has_bugcheck = in->bugcheck_code != DL_FILLER32;
    for (int i = 0; i < 4; i++)
        in->bugcheck_params[i] = dl_leptr(h + L->params + (uint32_t)i * (uint32_t)(b / 8), b);
    in->kdbg_address = dl_leptr(h + L->kdbg, b);
    in->dump_type = dl_le32(h + L->dump_type);
    uint64_t rs = dl_le64(h + L->required_space);
    in->has_required_space = rs != DL_FILLER64;
    in->required_dump_space = rs;
    uint64_t t = dl_le64(h + L->system_time);
    in->has_system_time = t != DL_FILLER64 && t != 0;
    in->system_time = t;
    uint64_t up = dl_le64(h + L->system_uptime);
    in->has_system_uptime = up != DL_FILLER64;
    in->system_uptime = up;
    in->mini_dump_fields = dl_le32(h + L->mini_dump_fields);
    in->product_type = dl_le32(h + L->product_type);
    in->has_product_type = in->product_type != DL_FILLER32;
    in->suite_mask = dl_le32(h + L->suite_mask);
    in->has_suite_mask = in->suite_mask != DL_FILLER32;
    in->attributes = dl_le32(h + L->attributes);
    in->has_attributes = in->attributes != DL_FILLER32;
    if (b == 32)
        in->pae_enabled = h[0x5C] == 1;
    /* Comment: printable text up to the first NUL; filler means unset. */
    const uint8_t *c = h + L->comment;
    size_t n = 0;
    if (memcmp(c, "PAGE", 4) != 0)
        while (n < 128 && c[n] >= 0x20 && c[n] < 0x7F)
            n++;
    memcpy(d->comment, c, n);
    d->comment[n] = 0;
    in->comment = d->comment;
}

static dl_status choose_arch(dl_dump *d)
{
    dl_info *in = &d->info;
    if (in->bits == 32) {
        if (in->machine_type != 0x014C && in->machine_type != DL_FILLER32)
            return dl_fail(d->ctx, DL_ECORRUPT, "PAGEDUMP header names machine 0x%x at offset 0x20, expected 0x14c",
                           in->machine_type);
        in->arch = in->pae_enabled ? DL_ARCH_X86_PAE : DL_ARCH_X86;
        return DL_OK;
    }
    if (in->machine_type == 0x8664)
        in->arch = DL_ARCH_X64;
    else if (in->machine_type == 0xAA64)
        in->arch = DL_ARCH_ARM64;
    else
        return dl_fail(d->ctx, DL_ECORRUPT, "PAGEDU64 header names unknown machine 0x%x at offset 0x30",
                       in->machine_type);
    return DL_OK;
}

dl_status dl_container_parse(dl_dump *d)
{
    dl_ctx *ctx = d->ctx;
    uint8_t magic[16] = {0};
    size_t mlen = d->src->size < sizeof magic ? (size_t)d->src->size : sizeof magic;
    dl_status st = dl_source_read(d->src, ctx, 0, magic, mlen);
    if (st != DL_OK)
        return st;
    if (mlen < 8 || memcmp(magic, "PAGE", 4) != 0 || (memcmp(magic + 4, "DUMP", 4) && memcmp(magic + 4, "DU64", 4)))
        return not_a_dump(d, magic, mlen);
    int is64 = !memcmp(magic + 4, "DU64", 4);
    d->info.bits = is64 ? 64 : 32;
    d->header_size = is64 ? 0x2000 : 0x1000;
    memcpy(d->signature, magic, 8);
    d->signature[8] = 0;
    d->info.signature = d->signature;
    d->info.input = "crashdump";
    if (d->src->size < d->header_size)
        return dl_fail(ctx, DL_ECORRUPT, "truncated header: the file has %llu bytes, a %s header needs 0x%x",
                       (unsigned long long)d->src->size, d->signature, d->header_size);
    uint8_t hdr[0x2000];
    st = dl_source_read(d->src, ctx, 0, hdr, d->header_size);
    if (st != DL_OK)
        return st;
    parse_header(d, hdr);
    st = choose_arch(d);
    if (st != DL_OK)
        return st;
    dl_info *in = &d->info;
    in->dump_type_name = dump_type_name(in->dump_type);
    /* Encrypted and not decrypted afterwards (Attributes bits 8/9, §1.5). */
    if (in->has_attributes && (in->attributes & 0x100) && !(in->attributes & 0x200))
        return dl_fail(ctx, DL_EUNSUPPORTED,
                       "encrypted dump (Attributes bit 8): decrypt it with KernelDumpDecrypt first");

    dl_physmem_init(&d->pm, d->src);
    switch (in->dump_type) {
    case 1:
        st = dl_body_runs(d, hdr);
        break;
    case 2:
    case 5:
    case 6:
        st = dl_body_bitmap(d);
        break;
    case 4:
        st = dl_body_triage(d);
        break;
    case 8:
    case 9:
    case 10:
        if (!is64)
            return dl_fail(ctx, DL_ECORRUPT, "DumpType %u (RDMP) in a 32-bit dump", in->dump_type);
        st = dl_body_rdmp(d);
        break;
    case 3:
        dl_warn(ctx, "header-only", "DumpType 3 holds the header only: no memory to analyse");
        st = DL_OK;
        break;
    default:
        return dl_fail(ctx, DL_ECORRUPT, "unknown DumpType %u at offset 0x%x", in->dump_type, is64 ? 0xF98 : 0xF88);
    }
    if (st != DL_OK)
        return st;
    st = dl_physmem_finish(&d->pm, ctx);
    if (st != DL_OK)
        return st;
    in->has_physical_map = in->dump_type != 4 && in->dump_type != 3;
    in->pages_present = d->pm.pages_present;
    if (d->pm.pages_past_eof)
        dl_warn(ctx, "truncated",
                "the dump is truncated: %llu pages described by the header are past the end of the file",
                (unsigned long long)d->pm.pages_past_eof);
    else if (in->has_attributes && (in->attributes & 0x4))
        dl_warn(ctx, "insufficient-dumpfile", "the writer flagged the dump file as too small (Attributes bit 2)");
    return DL_OK;
}
