//! Standard output for every command. `println!` panics when stdout is a closed pipe
//! (`paybridge api-key list | head -1`); here a closed pipe ends the process quietly with status
//! 0, as `head` asked for no more, and any other write error is one line on stderr.

use std::io::Write;

/// Prints one line to stdout, like `println!`.
macro_rules! outln {
    () => {
        $crate::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("paybridge: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}
