#!/usr/bin/env python3
"""The house drawn from the includes: which folder includes which, as a Mermaid graph.

Reads every #include "<root>/..." in core/ and tools/ (git ls-files), maps it to the folder it
names (util -> core/util, cd-serve/http -> tools/cd-serve/http, ...), and draws one arrow per
folder pair, labelled with the number of includes. A cycle fails the run.

  tests/include-graph.py            print the graph
  tests/include-graph.py --write    rewrite the block between the include-graph markers in ARCHITECTURE.md
  tests/include-graph.py --check    fail when ARCHITECTURE.md's block is stale (make lint)
"""
import collections
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BEGIN, END = "<!-- include-graph:begin -->", "<!-- include-graph:end -->"
INCLUDE = re.compile(r'^#include "([a-z-]+(?:/http)?)/', re.M)


def folder_of(path):
    parts = path.split("/")
    if parts[0] == "tools" and len(parts) > 3 and parts[2] == "http":
        return "tools/cd-serve/http"
    return "/".join(parts[:2])


def target_of(root):
    if root.startswith("cd-"):
        return "tools/" + root
    return "core/" + root


def edges():
    files = subprocess.run(["git", "ls-files", "core/*", "tools/*"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    count = collections.Counter()
    for path in files:
        if not path.endswith((".h", ".cpp")):
            continue
        here = folder_of(path)
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            for root in INCLUDE.findall(f.read()):
                there = target_of(root)
                if not os.path.isdir(os.path.join(ROOT, there)):
                    there = target_of(root.split("/")[0])
                if there != here:
                    count[(here, there)] += 1
    return count


def cycle(count):
    graph = collections.defaultdict(set)
    for a, b in count:
        graph[a].add(b)
    state = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def mermaid(count):
    ident = lambda folder: folder.replace("/", "_").replace("-", "_")
    lines = ["```mermaid", "graph TD"]
    for (a, b), n in sorted(count.items()):
        lines.append(f"  {ident(a)}[{a}] -->|{n}| {ident(b)}[{b}]")
    lines.append("```")
    return "\n".join(lines)


def main():
    count = edges()
    loop = cycle(count)
    if loop:
        sys.exit("include-graph: the folders include each other in a cycle: " + " -> ".join(loop))
    block = mermaid(count)
    if len(sys.argv) == 1:
        print(block)
        return
    path = os.path.join(ROOT, "ARCHITECTURE.md")
    text = open(path, encoding="utf-8").read()
    if BEGIN not in text or END not in text:
        sys.exit(f"include-graph: ARCHITECTURE.md has no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    old, tail = rest.split(END, 1)
    if sys.argv[1] == "--write":
        with open(path, "w", encoding="utf-8") as f:
            f.write(head + BEGIN + "\n" + block + "\n" + END + tail)
    elif old.strip() != block.strip():
        sys.exit("include-graph: ARCHITECTURE.md's graph is stale; run tests/include-graph.py --write")


if __name__ == "__main__":
    main()
