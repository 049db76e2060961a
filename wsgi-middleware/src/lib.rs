//! wsgi-middleware
