//! The test binary's allocator: the system's, plus a cap that the fuzz tests switch on — while a
//! [`Cap`] lives, an allocation over its limit aborts the process naming its size (a parser
//! that believes a length field), and the fuzzing thread's largest allocation is recorded.
//! Outside the fuzz tests it costs one relaxed atomic load per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The cap, on while this value lives (nested and concurrent caps share the limit).
pub struct Cap;

impl Cap {
    pub fn new(limit: usize) -> Self {
        ACTIVE.fetch_add(1, Relaxed);
        LIMIT.store(limit, Relaxed);
        LARGEST.with(|l| l.set(0));
        Cap
    }
}

impl Drop for Cap {
    fn drop(&mut self) {
        if ACTIVE.fetch_sub(1, Relaxed) == 1 {
            LIMIT.store(usize::MAX, Relaxed);
        }
    }
}

/// The largest allocation this thread made since its [`Cap`] was made.
pub fn largest() -> usize {
    LARGEST.with(|l| l.get())
}

pub struct CappedAlloc;

fn check(size: usize) {
    if size > LIMIT.load(Relaxed) {
        over_cap(size);
    }
    if ACTIVE.load(Relaxed) > 0 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }
}

/// Aborts, saying why, without allocating.
#[cold]
fn over_cap(size: usize) -> ! {
    use std::io::Write;
    let mut buf = [0u8; 128];
    let mut w = &mut buf[..];
    let _ = write!(
        w,
        "\nfuzz: an allocation of {size} bytes is over the cap of {} bytes\n",
        LIMIT.load(Relaxed)
    );
    let n = 128 - w.len();
    let _ = std::io::stderr().write_all(&buf[..n]);
    std::process::abort()
}

// SAFETY: every call forwards to the system allocator with the caller's own arguments.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
