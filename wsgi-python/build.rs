//! Embed an rpath to the directory holding the libpython pyo3 links
//! against, so binaries and tests load the same CPython whose `pip`
//! installed the packages (the machine may have more than one
//! libpython3.x). The interpreter is pyo3's: `$PYO3_PYTHON`, else the
//! `python3` on `PATH` (inside an active virtualenv, its base interpreter).
fn main() {
    let config = pyo3_build_config::get();
    // The interpreter's home (sys.base_prefix) and standard library: the
    // embedded interpreter starts with this home, so it imports the standard
    // library that matches the libpython it links, whatever `python3` is
    // first on PATH at run time (see `init_interpreter`).
    if let Some(exe) = config.executable() {
        let out = std::process::Command::new(exe)
            .args(["-c", "import sys, sysconfig; print(sys.base_prefix); print(sysconfig.get_path('stdlib')); print(sys.executable)"])
            .output();
        if let Some(out) = out.ok().filter(|o| o.status.success()) {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            if let (Some(home), Some(stdlib), Some(exe)) = (lines.next(), lines.next(), lines.next()) {
                println!("cargo:rustc-env=WSGI_PYTHON_HOME={home}");
                println!("cargo:rustc-env=WSGI_PYTHON_STDLIB={stdlib}");
                println!("cargo:rustc-env=WSGI_PYTHON_EXECUTABLE={exe}");
            }
        }
    }
    if let Some(dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // For dependents that build binaries (wsgi-server): DEP_WSGI_PYTHON_LIBDIR.
        println!("cargo:libdir={dir}");
    }
    pyo3_build_config::use_pyo3_cfgs();
}
