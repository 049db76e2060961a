//! Embed an rpath to the directory holding the libpython pyo3 links
//! against, so binaries and tests load the same CPython whose `pip`
//! installed the packages (the machine may have more than one
//! libpython3.x). The interpreter is pyo3's: `$PYO3_PYTHON`, else the
//! `python3` on `PATH` (inside an active virtualenv, its base interpreter).
fn main() {
    let config = pyo3_build_config::get();
    if let Some(dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // For dependents that build binaries (wsgi-server): DEP_WSGI_PYTHON_LIBDIR.
        println!("cargo:libdir={dir}");
    }
    pyo3_build_config::use_pyo3_cfgs();
}
