//! The progress of reading a diff's inputs: a bar with bytes per second and the time left on
//! a terminal, shown only once reading has taken a couple of seconds; nothing on a pipe or
//! under `--quiet`. The readers add the bytes they read (as stored: compressed bytes when
//! compressed) to a shared counter; a thread draws from it.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long reading goes before a bar is shown: short reads draw nothing.
const SHOW_AFTER: Duration = Duration::from_secs(2);

/// Draws the bar while it lives; `finish` (or dropping it) clears it.
pub(crate) struct ReadProgress {
    counter: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReadProgress {
    /// Starts following reads of `total` bytes (`None` when unknown: standard input); draws
    /// nothing unless standard error is a terminal and not quiet.
    pub(crate) fn start(total: Option<u64>) -> ReadProgress {
        let counter = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let enabled = std::io::stderr().is_terminal() && !crate::output::quiet();
        let thread = enabled.then(|| {
            let (counter, done) = (Arc::clone(&counter), Arc::clone(&done));
            std::thread::spawn(move || draw(&counter, &done, total))
        });
        ReadProgress {
            counter,
            done,
            thread,
        }
    }

    /// The counter the readers add their bytes to.
    pub(crate) fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.counter)
    }

    /// Stops drawing and clears the bar.
    pub(crate) fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ReadProgress {
    fn drop(&mut self) {
        self.stop();
    }
}

fn draw(counter: &AtomicU64, done: &AtomicBool, total: Option<u64>) {
    let started = Instant::now();
    let mut bar: Option<indicatif::ProgressBar> = None;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if bar.is_none() && started.elapsed() >= SHOW_AFTER {
            bar = Some(new_bar(total));
        }
        if let Some(bar) = &bar {
            bar.set_position(counter.load(Ordering::Relaxed));
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn new_bar(total: Option<u64>) -> indicatif::ProgressBar {
    let (bar, template) = match total {
        Some(total) => (
            indicatif::ProgressBar::new(total),
            "reading {bar:30} {binary_bytes}/{binary_total_bytes}  {binary_bytes_per_sec}  eta {eta}",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "reading {spinner} {binary_bytes}  {binary_bytes_per_sec}",
        ),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
