"""Write the bench's static source files into DIR: a 10 KiB CSS file and a
100 KiB JavaScript file, deterministic text that compresses like real code.

Usage: python make_assets.py DIR
"""
import os
import sys


def css(size):
    out, i = [], 0
    while sum(map(len, out)) < size:
        out.append(".c%d{margin:%dpx %dpx;color:#%06x;font:%dpx/1.4 sans-serif}\n"
                   % (i, i % 17, i % 23, (i * 2654435761) & 0xFFFFFF, 10 + i % 9))
        i += 1
    return "".join(out)[:size]


def js(size):
    out, i = [], 0
    while sum(map(len, out)) < size:
        out.append("function f%d(a,b){var r=a*%d+b;if(r>%d){return r-%d}return[r,'k%d'].join(':')}\n"
                   % (i, i % 97, i * 13, i % 31, i))
        i += 1
    return "".join(out)[:size]


def main(target):
    os.makedirs(os.path.join(target, "css"), exist_ok=True)
    os.makedirs(os.path.join(target, "js"), exist_ok=True)
    with open(os.path.join(target, "css", "site.css"), "w") as f:
        f.write(css(10 * 1024))
    with open(os.path.join(target, "js", "app.js"), "w") as f:
        f.write(js(100 * 1024))


if __name__ == "__main__":
    main(sys.argv[1])
