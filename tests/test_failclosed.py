"""Grades fail closed, wherever the course lives (GRADING_INVARIANTS.md 1, 4-8).

One tiny course in a private (0700) folder, one grading run over a corpus of submissions
that attack the machinery, each outcome asserted; then the layouts that once gave untouched
stubs full marks, rebuilt here: a traceback formatter that breaks, a Python environment under
a private folder, a file the sandbox user cannot read, a canary that fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.course.authoring import save
from grader.course.submissions import fill, reference_answers
from grader.engine.configuration import write_course_config
from grader.engine.coordinator import ClassGrader
from grader.engine.job import Job, Limits
from grader.engine.sandbox import ROOT as ROOT_MODE
from grader.engine.sandbox import can_isolate, mode
from grader.engine.sandbox.cgroups import placement
from grader.engine.worker import run_notebook

from .conftest import ROOT
from .test_classgrade import FULL, GOOD, SOURCE

A = "00_guard"  # the tiny assignment of tests/test_classgrade.py, in a course of its own
LIMITS = Limits(cell_timeout=10.0, notebook_timeout=60.0, memory_mb=1024, job_mb=64)
root_only = pytest.mark.skipif(not can_isolate(), reason="nothing isolates here (no root, no "
                               "user namespaces)")
# as root only: the sandbox user is not the file's owner
root_mode = pytest.mark.skipif(
    mode() != ROOT_MODE and not (mode() == "bwrap" and os.geteuid() == 0),
    reason="without root the notebook runs as the grading account's uid (user namespace)")
tree_limited = pytest.mark.skipif(placement()[0] is None, reason="without root and without a "
                                  "delegated cgroup memory is limited per process (rlimits)")

# each attack leaves the exercises unsolved (stub) or solved, and prints what it found
REPORT = "import json as _j\nprint('REPORT', _j.dumps(_found))\n"
ATTACKS = {
    "formatter_broken": ("stub", (
        "ip = get_ipython()\n"
        "ip.InteractiveTB.structured_traceback = lambda *a, **k: 1 / 0\n"
        "ip.showtraceback = lambda *a, **k: None\n"
        "def double(x):\n    raise NotImplementedError()\n")),
    "snoop_disk": ("solution", (
        "import os\n"
        "_found = {p: os.path.exists(p) for p in [{root!r} + '/.git', {root!r} + '/solutions',\n"
        "          {course!r} + '/gradebook.db', {course!r} + '/class_grades.csv', {course!r}]}\n"
        "_found['listing'] = sorted(os.listdir('/'))\n" + REPORT + GOOD["double"])),
    "fd_probe": ("solution", (
        "import os\n"
        "_fds = sorted(os.listdir('/proc/self/fd'))\n"
        "_found = {'fds': {}}\n"
        "for _fd in _fds:\n    try:\n"
        "        _found['fds'][_fd] = os.readlink('/proc/self/fd/' + _fd)\n"
        "    except OSError:\n        pass\n"
        "os.write(1, b'FAKE: all submissions OK\\n'); os.write(2, b'FAKE on stderr\\n')\n"
        + REPORT + GOOD["double"])),
    "pickle_pipe": ("solution", (
        "import io, os, pickle\n"
        "class _Boom:\n    def __reduce__(self):\n"
        "        return (io.open, ({marker!r}, 'w'))\n"
        "for _fd in range(3, 256):\n    try:\n        os.write(_fd, pickle.dumps(_Boom()))\n"
        "    except OSError:\n        pass\n" + GOOD["double"])),
    "tmp_writer": ("solution", (
        "open('/tmp/answer.txt', 'w').write('42'); open('/dev/shm/answer.txt', 'w').write('42')\n"
        "import socket, os\n_s = socket.socket(socket.AF_UNIX)\n_s.bind('/tmp/host.sock')\n"
        + GOOD["double"])),
    "tmp_reader": ("solution", (
        "import os, socket\n"
        "_found = {p: os.path.exists(p) for p in ['/tmp/answer.txt', '/dev/shm/answer.txt']}\n"
        "_c = socket.socket(socket.AF_UNIX)\n"
        "try:\n    _c.connect({sock!r}); _found['host_socket'] = True\n"
        "except OSError:\n    _found['host_socket'] = False\n" + REPORT + GOOD["double"])),
    "leaves_process": ("solution", (
        "import subprocess\n"
        "subprocess.Popen(['sleep', '7771'], start_new_session=True)\n" + GOOD["double"])),
    # three children each fill 450 MB, say so and hold it for 3 s: at 2.5 s, how many have
    # their 450 MB *and are still alive*? (The tree's OOM killer may kill one that already
    # finished, letting the next one finish: finishing is not holding.)
    "tree_memory": ("solution", (
        "import os, time\n_r, _w = os.pipe()\n_kids = []\n"
        "for _i in range(3):\n    _pid = os.fork()\n    if _pid == 0:\n"
        "        _hog = bytearray(450 * 2**20); os.write(_w, bytes([_i])); time.sleep(3)\n"
        "        os._exit(0)\n"
        "    _kids.append(_pid)\n"
        "time.sleep(2.5)\nos.set_blocking(_r, False)\n"
        "try:\n    _done = set(os.read(_r, 10))\nexcept BlockingIOError:\n    _done = set()\n"
        "_alive = {_i for _i, _pid in enumerate(_kids) if os.waitpid(_pid, os.WNOHANG) == (0, 0)}\n"
        "_found = {'held_at_once': len(_done & _alive), 'finished': len(_done)}\n"
        + REPORT + GOOD["double"])),
    "escape": ("solution", (
        "import ctypes, os\n_libc = ctypes.CDLL(None, use_errno=True)\n_found = {}\n"
        "_found['new_userns'] = _libc.unshare(0x10000000) == 0\n"
        "_found['mount'] = _libc.mount(b'tmpfs', b'/tmp', b'tmpfs', 0, None) == 0\n"
        "_found['ptrace_pid1'] = _libc.ptrace(16, 1, None, None) == 0\n"
        "try:\n    os.listdir('/proc/1/root'); _found['pid1_root'] = True\n"
        "except OSError:\n    _found['pid1_root'] = False\n"
        "try:\n    os.mkdir('/tmp/x'); os.chroot('/tmp/x'); os.chdir('../../../..')\n"
        "    os.chroot('.'); _found['chroot_escape'] = os.path.exists('/work') or "
        "os.path.exists('/root/.pyenv')\n"
        "except OSError:\n    _found['chroot_escape'] = False\n"
        "_found['pids'] = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        + REPORT + GOOD["double"])),
    "disk_filler": ("solution", (
        "for _i in range(5):\n    try:\n"
        "        open(f'fill{_i}', 'wb').write(b'x' * (20 << 20))\n"
        "    except OSError:\n        break\n" + GOOD["double"])),
    "rich_flood": ("solution", (
        "from IPython.display import display\n"
        "for _ in range(4):\n    display({'text/plain': 'x' * 20_000_000}, raw=True)\n"
        + GOOD["double"])),
}


def _submit(course: Path, student: str, nb) -> None:
    d = course / "submitted" / student / A
    d.mkdir(parents=True)
    nbformat.write(nb, d / f"{A}.ipynb")


@pytest.fixture(scope="module")
def private_course(tmp_path_factory):
    base = tmp_path_factory.mktemp("private")
    os.chmod(base, 0o700)
    course = base / "course"
    course.mkdir()
    write_course_config(course)
    save(SOURCE, course / "solutions" / A / f"{A}.ipynb")
    ClassGrader(course, workers=0, progress=False).ensure_assignment(A)
    (course / "class_grades.csv").write_text("student,score\nsomeone,100\n")
    return course


@pytest.fixture(scope="module")
def attacked(private_course, tmp_path_factory):
    course = private_course
    release = nbformat.read(course / "notebooks" / A / f"{A}.ipynb", as_version=4)
    marker = str(tmp_path_factory.mktemp("pwned") / "unpickled")
    host_sock = str(tmp_path_factory.mktemp("sock") / "host.sock")
    import socket

    server = socket.socket(socket.AF_UNIX)
    server.bind(host_sock)
    server.listen(1)
    fmt = {"root": str(ROOT), "course": str(course), "marker": marker, "sock": host_sock}
    for student, (base, code) in ATTACKS.items():
        answers = dict(GOOD) if base == "solution" else {}
        answers["double"] = code.replace("{root!r}", repr(fmt["root"])).replace(
            "{course!r}", repr(fmt["course"])).replace("{marker!r}", repr(marker)).replace(
            "{sock!r}", repr(host_sock))
        if base == "stub":
            answers["mean"] = "def mean(xs):\n    raise NotImplementedError()"
        _submit(course, student, fill(release, answers))
    _submit(course, "stub", release)
    _submit(course, "solution", fill(release, GOOD))
    proc = subprocess.run(
        [sys.executable, "-c", (
            "import json, sys; from grader.engine.coordinator import ClassGrader; "
            "from grader.engine.job import Limits; "
            f"outs = ClassGrader({str(course)!r}, workers=2, limits=Limits(**{LIMITS.__dict__!r}),"
            " progress=False).grade(); "
            "print('OUTCOMES', json.dumps({o.student: [o.status, o.auto_score, o.reason, "
            "o.flags] for o in outs}))")],
        capture_output=True, text=True, timeout=900, cwd=course)
    server.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("OUTCOMES"))
    return {"outcomes": json.loads(line.split(" ", 1)[1]), "stdout": proc.stdout,
            "stderr": proc.stderr, "marker": marker, "course": course}


def _report(course: Path, student: str) -> dict:
    nb = nbformat.read(course / "autograded" / student / A / f"{A}.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs)
    line = next(ln for ln in text.splitlines() if ln.startswith("REPORT"))
    return json.loads(line.split(" ", 1)[1])


def test_known_answers_and_no_attack_earns_points(attacked):
    outs = attacked["outcomes"]
    assert outs["stub"][:2] == ["graded", 0.0], outs["stub"]
    assert outs["solution"][:2] == ["graded", FULL], outs["solution"]
    assert outs["formatter_broken"][:2] == ["graded", 0.0], outs["formatter_broken"]
    for student in ATTACKS:
        assert outs[student][0] == "graded", (student, outs[student])
        assert outs[student][1] <= FULL


def test_a_cell_that_raised_fails_even_when_the_formatter_is_broken(attacked):
    nb = nbformat.read(attacked["course"] / "autograded" / "formatter_broken" / A / f"{A}.ipynb",
                       as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert any(o.ename == "NotImplementedError" for o in errors), errors


@root_only
def test_student_sees_only_the_allow_list(attacked):
    found = _report(attacked["course"], "snoop_disk")
    listing = set(found.pop("listing"))
    assert not any(found.values()), found  # not the repository, the course or its grades
    from grader.engine.sandbox import python_paths

    allowed = {"job", "home", "proc", "tmp", "dev", "usr", "etc", "bin", "sbin", "lib", "lib64",
               "lib32", "opt"} | {Path(p).parts[1] for p in python_paths()}
    assert listing <= allowed, listing - allowed


@root_only
def test_student_inherits_no_descriptor_and_no_output_stream(attacked):
    fds = _report(attacked["course"], "fd_probe")["fds"]
    assert [fds[k] for k in ("0", "1", "2")] == ["/dev/null"] * 3, fds
    rest = [v for k, v in fds.items() if k not in ("0", "1", "2")]
    # only its own channel(s): the results pipe, or the two sockets to its judge
    assert len(rest) <= 2 and all(v.startswith(("pipe:", "socket:")) for v in rest), fds
    assert "FAKE" not in attacked["stdout"] + attacked["stderr"]


def test_nothing_the_student_writes_is_unpickled(attacked):
    assert not os.path.exists(attacked["marker"]), "a pickle from the student was loaded"
    # garbage on the results pipe ends the notebook as the student's doing: no points
    assert attacked["outcomes"]["pickle_pipe"][:2] == ["graded", 0.0]


@root_only
def test_tmp_shm_and_host_sockets_are_private(attacked):
    found = _report(attacked["course"], "tmp_reader")
    assert found == {"/tmp/answer.txt": False, "/dev/shm/answer.txt": False,
                     "host_socket": False}, found


@root_only
def test_no_process_outlives_its_notebook(attacked):
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "sleep 7771" not in ps


@tree_limited
def test_memory_is_limited_for_the_whole_tree(attacked):
    found = _report(attacked["course"], "tree_memory")
    assert found["held_at_once"] < 3, found  # 3 x 450 MB never fit in a 1024 MB tree


@root_only
def test_student_cannot_escape_nor_see_the_judge_or_grader(attacked):
    found = _report(attacked["course"], "escape")
    pids = found.pop("pids")
    assert not any(found.values()), found  # no namespace, mount, ptrace, PID 1's root, chroot
    assert max(pids) < 20, pids  # its own PID namespace: only its own few processes


@root_only
def test_job_folder_is_bounded_and_the_summary_says_so(attacked):
    flags = attacked["outcomes"]["disk_filler"][3]
    assert any("DISK FULL" in f and "64 MB" in f for f in flags), flags
    assert not any("DISK FULL" in f for f in attacked["outcomes"]["solution"][3])


def test_rich_output_is_cut(attacked):
    path = attacked["course"] / "autograded" / "rich_flood" / A / f"{A}.ipynb"
    assert path.stat().st_size < 12_000_000


def test_canary_failure_stops_the_run_and_leaves_the_gradebook_untouched(tmp_path):
    from nbgrader.api import Gradebook, MissingEntry

    course = tmp_path / "course"
    write_course_config(course)
    broken = nbformat.from_dict(SOURCE)
    for cell in broken.cells:  # the reference solution itself is wrong
        cell.source = cell.source.replace("return 2 * x", "return 3 * x")
    save(broken, course / "solutions" / A / f"{A}.ipynb")
    grader = ClassGrader(course, workers=0, limits=LIMITS, progress=False)
    grader.ensure_assignment(A)
    release = nbformat.read(course / "notebooks" / A / f"{A}.ipynb", as_version=4)
    _submit(course, "ada", fill(release, GOOD))
    outs = grader.grade([A])
    assert [o.status for o in outs] == ["failed"]
    assert "known-answer" in outs[0].reason and "test_double" in outs[0].reason
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        with pytest.raises(MissingEntry):
            gb.find_submission(A, "ada")
    assert not (course / "autograded").exists()


@root_mode
def test_probe_names_a_path_the_sandbox_cannot_read(tmp_path):
    private = tmp_path / "private"
    (private / "pkgs").mkdir(parents=True)
    (private / "pkgs" / "secret_helper.py").write_text("X = 1\n")
    os.chmod(private / "pkgs" / "secret_helper.py", 0o600)
    os.chmod(private, 0o700)
    script = ("import json; from grader.engine.job import Job, Limits; "
              "from grader.engine.worker import run_notebook; "
              "r = run_notebook(Job('t', {0: 'x = 1'}, limits=Limits(notebook_timeout=60))); "
              "print(json.dumps([r.status, r.detail]))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(private / "pkgs"), str(ROOT)]))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)
    status, detail = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status == "machinery", (status, detail)
    assert "secret_helper.py" in detail and "chmod" in detail


LAYOUT_SCRIPT = """
import json, sys
from grader.engine.coordinator import ClassGrader
from grader.engine.job import Limits
import lazy_private_mod  # importable here; notebooks import it lazily in the sandbox
outs = ClassGrader(sys.argv[1], workers=1, limits=Limits(notebook_timeout=120),
                   progress=False).grade()
print("OUTCOMES", json.dumps({o.student: [o.status, o.auto_score, o.reason] for o in outs}))
"""


@root_only
def test_environment_and_course_under_a_private_folder(tmp_path):
    """The layout that gave untouched stubs full marks: a virtual environment and the course
    under a 0700 folder, a module that notebooks import lazily from there, TMPDIR elsewhere."""
    import site
    import sysconfig

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    venv = home / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
         "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    ours = sysconfig.get_paths()["purelib"]
    (purelib / "our_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n"
                                         f"import sys; sys.path.append({str(ROOT)!r})\n")
    (purelib / "lazy_private_mod.py").write_text("def double(x):\n    return 2 * x\n")
    assert site  # (the .pth file uses it in the new environment)
    course = home / "course"
    write_course_config(course)
    src = nbformat.from_dict(SOURCE)
    for cell in src.cells:
        cell.source = cell.source.replace(
            "    return 2 * x\n", "    import lazy_private_mod\n"
            "    return lazy_private_mod.double(x)\n")
    save(src, course / "solutions" / A / f"{A}.ipynb")
    subprocess.run([str(venv / "bin" / "python"), "-c",
                    "import sys; from grader.engine.coordinator import ClassGrader; "
                    "ClassGrader(sys.argv[1], workers=0, progress=False)"
                    ".ensure_assignment(sys.argv[2])", str(course), A], check=True,
                   capture_output=True)
    release = nbformat.read(course / "notebooks" / A / f"{A}.ipynb", as_version=4)
    _submit(course, "ben", release)
    _submit(course, "ada", fill(release, reference_answers(src)))
    tmpdir = tmp_path / "elsewhere"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", LAYOUT_SCRIPT, str(course)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=course)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("OUTCOMES"))
    outs = json.loads(line.split(" ", 1)[1])
    assert outs["ben"][:2] == ["graded", 0.0], outs
    assert outs["ada"][:2] == ["graded", FULL], outs
    shutil.rmtree(home)


def test_run_cell_decides_from_the_exception_not_the_output():
    job = Job("t", {0: "get_ipython().showtraceback = lambda *a, **k: None\n"
                       "get_ipython()._showtraceback = lambda *a, **k: None",
                    1: "raise KeyError('gone')", 2: "x = 1"}, limits=LIMITS, sandbox=False)
    res = run_notebook(job)
    assert res.status == "ok", res.detail
    assert res.cells[1]["raised"] is True and res.cells[2]["raised"] is False
    errors = [o for o in res.cells[1]["outputs"] if o["output_type"] == "error"]
    assert errors and errors[0]["ename"] == "KeyError"
