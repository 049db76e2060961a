//! # wsgi-python: Python WSGI applications as `wsgi-spec` applications
//!
//! [`PythonApp`] loads a Python WSGI callable (`module:callable`, as
//! Gunicorn names it) into an embedded CPython and implements
//! [`wsgi_spec::Application`] by calling it, so any server of the spec hosts
//! Flask, Django or any other PEP 3333 application.
//!
//! What the Python side sees follows PEP 3333 to the letter: `environ` is a
//! real `dict` of native strings decoded as latin-1 (header bytes 0x80-0xFF
//! survive), `wsgi.input` reads the request body on demand and releases the
//! GIL while it waits, `wsgi.errors` goes to the server's error log,
//! `start_response` checks its arguments, honours `exc_info` and returns
//! `write()`, `wsgi.file_wrapper` files are sent with the server's file
//! support, and the result's `close()` is called on every path.
//!
//! ## Which interpreter
//! The crate links the libpython of the interpreter pyo3 builds against:
//! `$PYO3_PYTHON`, else the `python3` on `PATH`. Its build script embeds an
//! rpath to that interpreter's `LIBDIR`, so the binary loads the same CPython
//! whose `pip` installed the packages, even where the system has another
//! libpython of the same version. To use another interpreter, build with
//! `PYO3_PYTHON=/path/to/python3`. A virtualenv's packages are found through
//! `VIRTUAL_ENV` or [`LoadOptions::virtualenv`].
#![doc(test(attr(deny(warnings))))]

mod body;
mod context;
mod convert;
mod objects;

use std::ffi::CString;
use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::PyModule;
use wsgi_spec::{AppError, Application, Body, Environ, StartResponse};

pub use objects::PyAppError;

/// Everything that can go wrong loading a Python application.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The application could not be loaded; the message names the module,
    /// the attribute and the Python exception, on one line.
    #[error("{0}")]
    Load(String),
    /// The interpreter could not be set up (bad `chdir`, virtualenv...).
    #[error("{0}")]
    Setup(String),
}

/// How to find and load the application.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Change to this directory before loading (`--chdir`); it is also put
    /// first on `sys.path`.
    pub chdir: Option<PathBuf>,
    /// Extra `sys.path` entries, first (`--pythonpath`).
    pub pythonpath: Vec<PathBuf>,
    /// Environment variables set before the interpreter starts (`--env`).
    pub env: Vec<(String, String)>,
    /// A virtualenv whose packages import; defaults to `$VIRTUAL_ENV`, else
    /// the virtualenv the program itself was installed into (found by its
    /// `pyvenv.cfg`).
    pub virtualenv: Option<PathBuf>,
}

/// A Python WSGI callable, hosted as a spec application.
pub struct PythonApp {
    app: Py<PyAny>,
    consts: convert::Consts,
    spec: String,
}

impl std::fmt::Debug for PythonApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonApp").field("spec", &self.spec).finish_non_exhaustive()
    }
}

const LOADER: &str = include_str!("../python/_wsgi_rs_loader.py");

impl PythonApp {
    /// Start the interpreter (once per process) and load `spec`:
    /// `module:callable`, `module` (attribute `application`), dotted
    /// attributes, or a factory call with literal arguments
    /// (`'pkg.app:create_app("prod", debug=False)'`).
    ///
    /// # Errors
    /// [`Error::Setup`] when the directory or virtualenv is unusable;
    /// [`Error::Load`] with one line naming what failed to import, the
    /// missing attribute, or the non-callable target.
    pub fn load(spec: &str, opts: &LoadOptions) -> Result<PythonApp, Error> {
        if let Some(dir) = &opts.chdir {
            std::env::set_current_dir(dir)
                .map_err(|e| Error::Setup(format!("cannot chdir to {}: {e}", dir.display())))?;
        }
        for (k, v) in &opts.env {
            // Before the interpreter starts, so os.environ sees it; no
            // other threads run Python or read the environment yet.
            std::env::set_var(k, v);
        }
        init_interpreter(&virtualenv(opts))?;
        Python::attach(|py| {
            prepare_sys_path(py, opts)?;
            let code = CString::new(LOADER).map_err(|e| Error::Setup(e.to_string()))?;
            let loader = PyModule::from_code(py, &code, c"_wsgi_rs_loader.py", c"_wsgi_rs_loader")
                .map_err(|e| Error::Setup(format!("loader: {e}")))?;
            let app = loader.getattr("load").and_then(|f| f.call1((spec,))).map_err(|e| {
                let msg = e.value(py).str().map(|s| s.to_string()).unwrap_or_else(|_| e.to_string());
                let name = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_default();
                if name == "LoadError" {
                    Error::Load(msg)
                } else {
                    Error::Load(format!("cannot load {spec:?}: {name}: {msg}"))
                }
            })?;
            let consts = convert::Consts::new(py).map_err(|e| Error::Setup(e.to_string()))?;
            Ok(PythonApp { app: app.unbind(), consts, spec: spec.to_owned() })
        })
    }

    /// Wrap an already-loaded Python callable.
    ///
    /// # Errors
    /// When the interpreter's constants cannot be built (never in practice).
    pub fn from_callable(py: Python<'_>, app: Bound<'_, PyAny>) -> PyResult<PythonApp> {
        Ok(PythonApp { app: app.unbind(), consts: convert::Consts::new(py)?, spec: "<callable>".into() })
    }

    /// The specification it was loaded from.
    #[must_use]
    pub fn spec(&self) -> &str {
        &self.spec
    }
}

/// Start the embedded interpreter (once per process).
///
/// Python finds its standard library from its program name, which for an
/// embedding program is `python3` searched on `PATH`: that may be another
/// CPython of the same version (a distribution's `/usr/bin/python3` beside
/// a pyenv or source build), whose standard library does not match the
/// libpython this program loads (its rpath). So the interpreter starts with
/// the home of the CPython it was built against (`WSGI_PYTHON_HOME`, found
/// at build time), when that standard library exists on this machine. A
/// user points it elsewhere with `PYTHONHOME`, which then wins.
/// `sys.executable` is the virtualenv's `bin/python` when there is one
/// (what `multiprocessing` and subprocess-spawning code run), else the
/// build interpreter.
fn init_interpreter(venv: &Option<PathBuf>) -> Result<(), Error> {
    // SAFETY: a plain query, valid before initialisation.
    if unsafe { pyo3::ffi::Py_IsInitialized() } != 0 {
        return Ok(());
    }
    let home = match (option_env!("WSGI_PYTHON_HOME"), option_env!("WSGI_PYTHON_STDLIB")) {
        (Some(home), Some(stdlib))
            if std::env::var_os("PYTHONHOME").is_none() && Path::new(stdlib).join("os.py").is_file() =>
        {
            Some(CString::new(home).map_err(|e| Error::Setup(e.to_string()))?)
        }
        _ => None,
    };
    let executable = venv
        .as_ref()
        .map(|v| v.join("bin/python"))
        .filter(|p| p.exists())
        .map(|p| p.into_os_string().into_encoded_bytes())
        .or_else(|| option_env!("WSGI_PYTHON_EXECUTABLE").map(|e| e.as_bytes().to_vec()))
        .map(CString::new)
        .transpose()
        .map_err(|e| Error::Setup(e.to_string()))?;
    if let Some(home) = home {
        // SAFETY: the documented PyConfig sequence (init, set, initialise,
        // clear) on a zeroed config owned by this frame; not initialised
        // yet (checked above) and no other thread uses Python. As pyo3's own
        // initialisation: no signal handlers (the server owns signals), and
        // the GIL is released at the end.
        unsafe {
            let mut config = std::mem::MaybeUninit::<pyo3::ffi::PyConfig>::zeroed();
            let config = config.as_mut_ptr();
            pyo3::ffi::PyConfig_InitPythonConfig(config);
            (*config).install_signal_handlers = 0;
            let mut status = pyo3::ffi::PyConfig_SetBytesString(config, &raw mut (*config).home, home.as_ptr());
            if let Some(exe) = executable.as_ref().filter(|_| pyo3::ffi::PyStatus_Exception(status) == 0) {
                status = pyo3::ffi::PyConfig_SetBytesString(config, &raw mut (*config).executable, exe.as_ptr());
            }
            let status = if pyo3::ffi::PyStatus_Exception(status) == 0 {
                pyo3::ffi::Py_InitializeFromConfig(config)
            } else {
                status
            };
            pyo3::ffi::PyConfig_Clear(config);
            if pyo3::ffi::PyStatus_Exception(status) != 0 {
                let msg = if status.err_msg.is_null() {
                    "unknown error".to_owned()
                } else {
                    std::ffi::CStr::from_ptr(status.err_msg).to_string_lossy().into_owned()
                };
                return Err(Error::Setup(format!("cannot start Python with home {}: {msg}", home.to_string_lossy())));
            }
            pyo3::ffi::PyEval_SaveThread();
        }
    }
    // Marks pyo3's one-time initialisation done (a no-op when initialised above).
    Python::initialize();
    Ok(())
}

/// The virtualenv whose packages import: the option, else `$VIRTUAL_ENV`,
/// else the one this program is installed in.
fn virtualenv(opts: &LoadOptions) -> Option<PathBuf> {
    opts.virtualenv.clone().or_else(|| std::env::var_os("VIRTUAL_ENV").map(PathBuf::from)).or_else(venv_of_executable)
}

/// The virtualenv the running program was installed into (`pip install`
/// puts `wsgi-server` in `<venv>/bin/`), recognised by its `pyvenv.cfg`.
fn venv_of_executable() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let venv = exe.parent()?.parent()?;
    venv.join("pyvenv.cfg").is_file().then(|| venv.to_path_buf())
}

fn prepare_sys_path(py: Python<'_>, opts: &LoadOptions) -> Result<(), Error> {
    let setup = |e: PyErr| Error::Setup(format!("setting up sys.path: {e}"));
    let sys = py.import("sys").map_err(setup)?;
    let path = sys.getattr("path").map_err(setup)?;
    if let Some(venv) = virtualenv(opts) {
        let vi = sys.getattr("version_info").map_err(setup)?;
        let major: u32 = vi.getattr("major").and_then(|v| v.extract()).map_err(setup)?;
        let minor: u32 = vi.getattr("minor").and_then(|v| v.extract()).map_err(setup)?;
        let site = venv.join(format!("lib/python{major}.{minor}/site-packages"));
        if !site.is_dir() {
            return Err(Error::Setup(format!(
                "virtualenv {}: no {} (is it a Python {major}.{minor} virtualenv?)",
                venv.display(),
                site.display()
            )));
        }
        let site = site.to_string_lossy().into_owned();
        // First on sys.path, so the venv's packages win, and through
        // site.addsitedir so its .pth files are honoured (unless Python's
        // own start-up found the venv from `sys.executable` and did both).
        if !path.contains(&site).map_err(setup)? {
            path.call_method1("insert", (0, &site)).map_err(setup)?;
            py.import("site").and_then(|m| m.call_method1("addsitedir", (&site,))).map_err(setup)?;
        }
    }
    for p in opts.pythonpath.iter().rev() {
        path.call_method1("insert", (0, p.to_string_lossy().into_owned())).map_err(setup)?;
    }
    let cwd = std::env::current_dir().map_err(|e| Error::Setup(e.to_string()))?;
    path.call_method1("insert", (0, cwd.to_string_lossy().into_owned())).map_err(setup)?;
    Ok(())
}

/// Keep one Python thread state alive for the calling thread.
///
/// Without it, each `Python::attach` on a thread Python does not know
/// creates a thread state and destroys it at the end: slow, and it loses
/// `threading.local` data and the thread's `contextvars` context between
/// the application call and the iteration of its body. Called on every
/// entry into Python; the thread state is released when the thread exits.
pub(crate) fn keep_thread_state() {
    struct Kept {
        saved: *mut pyo3::ffi::PyThreadState,
        gil: pyo3::ffi::PyGILState_STATE,
    }
    impl Drop for Kept {
        fn drop(&mut self) {
            // SAFETY: undoes `PyEval_SaveThread` then `PyGILState_Ensure`,
            // on the thread that made them (thread-local destructor).
            unsafe {
                pyo3::ffi::PyEval_RestoreThread(self.saved);
                pyo3::ffi::PyGILState_Release(self.gil);
            }
        }
    }
    thread_local! {
        static KEPT: std::cell::RefCell<Option<Kept>> = const { std::cell::RefCell::new(None) };
    }
    KEPT.with(|k| {
        if k.borrow().is_some() {
            return;
        }
        // SAFETY: the interpreter is initialised (a PythonApp exists) and
        // this thread does not hold the GIL (we are outside any attach):
        // take a thread state for this thread, then release the GIL while
        // keeping the thread state.
        let kept = unsafe {
            if pyo3::ffi::Py_IsInitialized() == 0 || pyo3::ffi::PyGILState_Check() == 1 {
                return;
            }
            let gil = pyo3::ffi::PyGILState_Ensure();
            let saved = pyo3::ffi::PyEval_SaveThread();
            Kept { saved, gil }
        };
        *k.borrow_mut() = Some(kept);
    });
}

thread_local! {
    /// The thread state this thread's event loop holds the GIL with, while
    /// it is busy (see [`loop_busy`]); null when it does not hold it.
    static LOOP_GIL: std::cell::Cell<*mut pyo3::ffi::PyThreadState> = const { std::cell::Cell::new(std::ptr::null_mut()) };
}

/// For an event-loop thread that runs Python applications inline: take the
/// GIL when the loop wakes up with work, so the requests it runs before it
/// sleeps again ([`loop_idle`]) do not each take and release it. Python
/// code running on the loop still hands the GIL to other Python threads at
/// the interpreter's switch interval; Rust work between requests does not,
/// so a loop that never sleeps should call [`loop_idle`] then `loop_busy`
/// every few milliseconds.
///
/// Does nothing when the interpreter is not initialised or this thread
/// already holds the GIL this way.
///
/// # Blocking
/// Waits for the GIL.
pub fn loop_busy() {
    if LOOP_GIL.with(|c| !c.get().is_null()) || unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
        return;
    }
    keep_thread_state();
    // SAFETY: the interpreter is initialised; this thread has a thread
    // state (kept above) and does not hold the GIL (we are outside any
    // Python call: hooks run between tasks), so it may restore it.
    unsafe {
        if pyo3::ffi::PyGILState_Check() == 1 {
            return;
        }
        let ts = pyo3::ffi::PyGILState_GetThisThreadState();
        if ts.is_null() {
            return;
        }
        pyo3::ffi::PyEval_RestoreThread(ts);
        LOOP_GIL.with(|c| c.set(ts));
    }
}

/// Release the GIL [`loop_busy`] took (before the loop sleeps, and before
/// the thread ends or runs anything else).
pub fn loop_idle() {
    LOOP_GIL.with(|c| {
        if !c.get().is_null() {
            // SAFETY: this thread holds the GIL since `loop_busy` (every
            // Python call in between released what it took).
            unsafe {
                pyo3::ffi::PyEval_SaveThread();
            }
            c.set(std::ptr::null_mut());
        }
    });
}

/// Call in a single-threaded parent just before `fork()` when the
/// interpreter is initialised (an app was preloaded): takes the GIL and
/// Python's fork locks (`PyOS_BeforeFork`).
pub fn before_fork() {
    // SAFETY: the interpreter is initialised (checked) and this thread holds
    // no GIL; the matching release is in `after_fork_parent`/`_child`.
    unsafe {
        if pyo3::ffi::Py_IsInitialized() == 0 {
            return;
        }
        let _ = pyo3::ffi::PyGILState_Ensure();
        pyo3::ffi::PyOS_BeforeFork();
    }
}

/// Call in the parent right after `fork()` (see [`before_fork`]).
pub fn after_fork_parent() {
    // SAFETY: pairs with `before_fork`, which took the GIL.
    unsafe {
        if pyo3::ffi::Py_IsInitialized() == 0 {
            return;
        }
        pyo3::ffi::PyOS_AfterFork_Parent();
        pyo3::ffi::PyEval_SaveThread();
    }
}

/// Call in the child right after `fork()` (see [`before_fork`]): resets
/// Python's state for the new process and releases the GIL.
pub fn after_fork_child() {
    // SAFETY: pairs with `before_fork` in the parent; the child's only
    // thread holds the GIL.
    unsafe {
        if pyo3::ffi::Py_IsInitialized() == 0 {
            return;
        }
        pyo3::ffi::PyOS_AfterFork_Child();
        pyo3::ffi::PyEval_SaveThread();
    }
}

/// The source files of every loaded Python module (for `--reload`).
#[must_use]
pub fn loaded_module_files() -> Vec<PathBuf> {
    if unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
        return Vec::new();
    }
    keep_thread_state();
    Python::attach(|py| {
        let code = c"[getattr(m, '__file__', None) for m in list(__import__('sys').modules.values())]";
        py.eval(code, None, None)
            .and_then(|v| v.extract::<Vec<Option<String>>>())
            .map(|files| files.into_iter().flatten().map(PathBuf::from).collect())
            .unwrap_or_default()
    })
}

/// Make Python's `faulthandler` write the stack of every thread to stderr
/// on a fatal signal (`SIGABRT`, `SIGSEGV`...): a hung worker aborted by the
/// master leaves the Python stacks of its busy threads in the error log.
pub fn enable_faulthandler() {
    if unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
        return;
    }
    keep_thread_state();
    Python::attach(|py| {
        let _ = py
            .import("faulthandler")
            .and_then(|f| f.call_method1("enable", (py.import("sys")?.getattr("stderr")?, true)));
    });
}

impl Application for PythonApp {
    fn call(&self, environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        let errors = environ.errors.clone();
        keep_thread_state();
        Python::attach(|py| {
            let (dict, sr) = convert::environ_dict(py, &self.consts, environ, start_response)
                .map_err(|e| objects::app_error(py, e, &errors))?;
            // The request's own contextvars context (see `context`).
            let ctx = context::copy_current(py).map_err(|e| objects::app_error(py, e, &errors))?;
            let result = context::run(&ctx, || self.app.bind(py).call1((dict, sr.func.bind(py))));
            let result = match result {
                Ok(r) => r,
                Err(e) => {
                    self.consts.responders.recycle(py, sr);
                    return Err(objects::app_error(py, e, &errors));
                }
            };
            body::into_body(py, &self.consts, result, ctx, sr, errors.clone())
                .map_err(|e| objects::app_error(py, e, &errors))
        })
    }
}
