//! With the `python` feature (used only by `tests/python_flask.rs`): embed
//! an rpath to the directory of the libpython pyo3 links against (exported
//! by wsgi-python's build script as DEP_WSGI_PYTHON_LIBDIR), so the test
//! binary loads the CPython whose `pip` installed Flask.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_WSGI_PYTHON_LIBDIR");
    if std::env::var_os("CARGO_FEATURE_PYTHON").is_some() {
        if let Ok(dir) = std::env::var("DEP_WSGI_PYTHON_LIBDIR") {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
}
