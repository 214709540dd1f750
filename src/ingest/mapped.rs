//! Big regular files read through a read-only memory map.
//!
//! Owns: mapping a file, handing out its bytes, and surviving the file shrinking while mapped.
//! Through a map the decoding threads read the page cache in place; `read` has the kernel copy
//! every byte into a buffer first (~5 % of a replay's CPU). The catch: touching a page of a
//! map past the file's end (the file was truncated meanwhile) raises SIGBUS, which would kill
//! the process. So a SIGBUS handler maps zero pages over the rest of the map it finds the fault
//! in and marks the map; the reader then fails with one clear sentence instead of crashing.
//! Faults outside every map go to the handler there was before (Rust's stack-overflow guard),
//! or kill the process as they always would have.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Maps alive at once (one per input file being read; more are read without a map).
const SLOTS: usize = 16;

/// Where a map is, for the signal handler, which may only read atomics.
struct Region {
    start: AtomicUsize,
    len: AtomicUsize,
    shrank: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // Only to build the array below.
const EMPTY: Region = Region {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    shrank: AtomicBool::new(false),
};
static REGIONS: [Region; SLOTS] = [EMPTY; SLOTS];
/// Which slots are taken (the handler does not look at it).
static TAKEN: Mutex<[bool; SLOTS]> = Mutex::new([false; SLOTS]);
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The SIGBUS action before ours; `None` if installing ours failed (then nothing is mapped).
static PREVIOUS: OnceLock<Option<SigAction>> = OnceLock::new();

/// `libc::sigaction`, which holds only plain data, made shareable with the handler.
struct SigAction(libc::sigaction);
// SAFETY: written once before the handler is installed, only read afterwards.
unsafe impl Sync for SigAction {}
unsafe impl Send for SigAction {}

/// A read-only private map of a whole file.
pub struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    slot: usize,
    /// The file, to see whether it shrank within the page that held its new end (those bytes
    /// read as zeros without a fault).
    file: File,
}

// SAFETY: the map is read-only and lives until drop; reading it from any thread is fine.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `file`; `None` when it cannot (no free slot, no handler,
    /// `mmap` refused): the caller then reads the file instead.
    pub fn new(file: &File, len: u64) -> Option<Mapping> {
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        let file = file.try_clone().ok()?;
        PREVIOUS.get_or_init(install_handler).as_ref()?;
        let slot = {
            let mut taken = TAKEN.lock().ok()?;
            let slot = taken.iter().position(|t| !t)?;
            taken[slot] = true;
            slot
        };
        // SAFETY: a fresh read-only mapping of an open file; the kernel checks the arguments.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            release(slot);
            return None;
        }
        let r = &REGIONS[slot];
        r.shrank.store(false, Ordering::Release);
        r.len.store(len, Ordering::Release);
        r.start.store(ptr as usize, Ordering::Release);
        Some(Mapping {
            ptr,
            len,
            slot,
            file,
        })
    }

    /// The file's bytes as mapped (zeros where it shrank, see [`Mapping::shrank`]).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` readable bytes until `self` drops; pages
        // the file lost are replaced by zero pages rather than faulting.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }

    /// Whether the file shrank while mapped: some of [`Mapping::bytes`] may read as zeros.
    pub fn shrank(&self) -> bool {
        REGIONS[self.slot].shrank.load(Ordering::Acquire)
            || self
                .file
                .metadata()
                .map_or(true, |m| m.len() < self.len as u64)
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl super::InPlace for Mapping {
    /// Unmaps the whole pages of `range` from the process (`MADV_DONTNEED`; the file's pages
    /// stay in the page cache, and reading them again maps them again). The map then does not
    /// grow to the file's size in the process's resident memory, and the final `munmap` has
    /// little left to tear down: for the 368 MB benchmark file it took ~15 ms between the end
    /// of ingest and the query.
    fn done_with(&self, range: std::ops::Range<usize>) {
        let page = PAGE.load(Ordering::Relaxed);
        let base = self.ptr as usize;
        let start = (base + range.start).next_multiple_of(page);
        let end = (base + range.end.min(self.len)) & !(page - 1);
        if end > start {
            // SAFETY: advice on whole pages of our own live private file mapping; its contents
            // read the same afterwards (refaulted from the file).
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let r = &REGIONS[self.slot];
        r.start.store(0, Ordering::Release);
        r.len.store(0, Ordering::Release);
        // SAFETY: unmapping exactly what `new` mapped; nothing borrows it any more.
        unsafe { libc::munmap(self.ptr, self.len) };
        release(self.slot);
    }
}

fn release(slot: usize) {
    if let Ok(mut taken) = TAKEN.lock() {
        taken[slot] = false;
    }
}

fn install_handler() -> Option<SigAction> {
    // SAFETY: plain libc calls with zero-initialised structs of their own types.
    unsafe {
        let page = libc::sysconf(libc::_SC_PAGESIZE);
        if page > 0 {
            PAGE.store(page as usize, Ordering::Relaxed);
        }
        let mut ours: libc::sigaction = std::mem::zeroed();
        ours.sa_sigaction = on_sigbus as *const () as usize;
        ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut ours.sa_mask);
        let mut previous: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, &ours, &mut previous) != 0 {
            return None;
        }
        Some(SigAction(previous))
    }
}

/// Async-signal-safe: atomics, `mmap` and `sigaction` only.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for r in &REGIONS {
        let start = r.start.load(Ordering::Acquire);
        let len = r.len.load(Ordering::Acquire);
        if start != 0 && addr >= start && addr - start < len {
            let page = addr & !(PAGE.load(Ordering::Relaxed) - 1);
            // Zero pages over the rest of the map: the faulting read, and every later one,
            // then reads zeros.
            // SAFETY: replaces part of our own live mapping, page-aligned, in place.
            let p = unsafe {
                libc::mmap(
                    page as *mut libc::c_void,
                    start + len - page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                r.shrank.store(true, Ordering::Release);
                return;
            }
        }
    }
    // Not a fault of ours: what would have happened without this handler.
    let previous = PREVIOUS.get().and_then(Option::as_ref);
    match previous {
        Some(SigAction(prev))
            if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN =>
        {
            // SAFETY: calling the handler that was installed, with the signature its flags say.
            unsafe {
                if prev.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(prev.sa_sigaction);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
                    f(sig);
                }
            }
        }
        _ => {
            // Back to the default action; returning repeats the access, which then kills the
            // process as SIGBUS always did.
            // SAFETY: installing SIG_DFL with an empty mask.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut dfl.sa_mask);
                libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file cut short while mapped reads as zeros past its new end (instead of SIGBUS), and
    /// the map says it shrank; one left alone reads as written.
    #[test]
    fn a_file_truncated_while_mapped_reads_zeros_and_is_reported() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..5 * 4096 + 100).map(|i| b'a' + (i % 26) as u8).collect();
        f.write_all(&data).unwrap();
        f.flush().unwrap();
        let file = File::open(f.path()).unwrap();
        let intact = Mapping::new(&file, data.len() as u64).unwrap();
        assert_eq!(intact.bytes(), &data[..]);
        assert!(!intact.shrank());
        // Given back, and read again: the same bytes.
        use super::super::InPlace;
        intact.done_with(100..4 * 4096 + 7);
        assert_eq!(intact.bytes(), &data[..]);
        drop(intact);

        let m = Mapping::new(&file, data.len() as u64).unwrap();
        f.as_file().set_len(4096 + 10).unwrap();
        let bytes = m.bytes();
        assert_eq!(&bytes[..4096 + 10], &data[..4096 + 10]);
        assert!(bytes[2 * 4096..].iter().all(|&b| b == 0));
        assert!(m.shrank());
        // The slot is free again once the map is gone, and a new map starts unmarked.
        drop(m);
        let again = Mapping::new(&file, 4096).unwrap();
        assert!(!again.shrank());
        // Cut within the last page: no fault, but the size says so.
        let m = Mapping::new(&file, 4096 + 10).unwrap();
        f.as_file().set_len(4096 + 5).unwrap();
        assert_eq!(m.bytes()[4096 + 5..], [0; 5]);
        assert!(m.shrank());
    }
}
