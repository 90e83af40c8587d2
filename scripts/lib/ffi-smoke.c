/* Loads the kith-ffi library built by scripts/lib-size.sh and calls it through
 * its C ABI (uniffi scaffolding), so that the library measured is also known to
 * load and run: relocations (RELR), symbol versions and the code are real.
 * Cross-built libraries run under qemu-user. Usage: ffi-smoke LIBRARY
 * Prints "contract N, kith_version V"; exits 1 on any failure. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
typedef struct { uint64_t capacity; uint64_t len; uint8_t *data; } RustBuffer;
typedef struct { int8_t code; RustBuffer error_buf; } RustCallStatus;
int main(int argc, char **argv) {
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    uint32_t (*contract)(void) = (uint32_t (*)(void))dlsym(lib, "ffi_kith_ffi_uniffi_contract_version");
    RustBuffer (*version)(RustCallStatus *) = (RustBuffer (*)(RustCallStatus *))dlsym(lib, "uniffi_kith_ffi_fn_func_kith_version");
    void (*rb_free)(RustBuffer, RustCallStatus *) = (void (*)(RustBuffer, RustCallStatus *))dlsym(lib, "ffi_kith_ffi_rustbuffer_free");
    if (!contract || !version || !rb_free) { fprintf(stderr, "dlsym: %s\n", dlerror()); return 1; }
    RustCallStatus status = {0};
    RustBuffer v = version(&status);
    if (status.code != 0) { fprintf(stderr, "kith_version failed: %d\n", status.code); return 1; }
    /* A returned string is a buffer of its UTF-8 bytes. */
    printf("contract %u, kith_version %.*s\n", contract(), (int)v.len, (const char *)v.data);
    rb_free(v, &status);
    return status.code != 0;
}
