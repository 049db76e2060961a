"""A small Flask app for the README and the pip-install test."""
from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    return jsonify(message="Hello from Flask on wsgi-server")
