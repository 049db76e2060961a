//! wsgi-server
