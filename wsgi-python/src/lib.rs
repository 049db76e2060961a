//! wsgi-python
