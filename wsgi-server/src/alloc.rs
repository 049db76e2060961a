//! [`MiMalloc`]: the global allocator of the `wsgi-server` command (cargo
//! feature `mimalloc`, on with `python`).

use std::alloc::{GlobalAlloc, Layout};

use libmimalloc_sys as ffi;

/// The alignment of every mimalloc block of 16 bytes or more (smaller
/// blocks are 8-aligned, which is all such sizes can ask for).
const MIN_ALIGN: usize = 16;

/// mimalloc as the global allocator.
///
/// Per request the HTTP layer, the environ and the response make a dozen
/// small allocations, and mimalloc's are cheaper than glibc's. Unlike the
/// `mimalloc` crate's allocator, which calls mimalloc's aligned entry points
/// for everything, an allocation that needs no more than mimalloc's natural
/// alignment takes `mi_malloc`: the aligned entry points only have a fast
/// path for small blocks that happen to be aligned, and fall back to a
/// general search otherwise (measured on the Rust hello app: about 500
/// instructions per request more).
///
/// ```no_run
/// #[global_allocator]
/// static ALLOCATOR: wsgi_server::alloc::MiMalloc = wsgi_server::alloc::MiMalloc;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MiMalloc;

/// True when `mi_malloc`'s alignment is enough for `align` and `size`.
fn natural(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

// SAFETY: every method forwards to mimalloc, which returns blocks of at least
// the asked size with at least the asked alignment (the natural alignment
// where `natural` holds, the explicit one otherwise), or null on failure,
// and frees any of its blocks with `mi_free`.
unsafe impl GlobalAlloc for MiMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls with a size and a power-of-two alignment.
        unsafe {
            if natural(layout.align(), layout.size()) {
                ffi::mi_malloc(layout.size()).cast()
            } else {
                ffi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if natural(layout.align(), layout.size()) {
                ffi::mi_zalloc(layout.size()).cast()
            } else {
                ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { ffi::mi_free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new
        // block keeps the alignment `layout` asks for.
        unsafe {
            if natural(layout.align(), new_size) {
                ffi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                ffi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_asked_for() {
        let a = MiMalloc;
        for size in [1usize, 2, 3, 7, 8, 9, 15, 16, 17, 24, 40, 100, 1000, 1025, 5000, 70_000, 1 << 20] {
            for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
                let Ok(layout) = Layout::from_size_align(size, align) else { continue };
                // SAFETY: a non-zero size; the block is freed with its layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size}, align {align}");
                    p.write_bytes(0xa5, size);
                    let q = a.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc: size {size}, align {align}");
                    assert_eq!(*q.add(size - 1), 0xa5);
                    a.dealloc(q, Layout::from_size_align(size * 3, align).expect("valid layout"));
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
