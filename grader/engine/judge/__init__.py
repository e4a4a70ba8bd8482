"""A trusted judge: test cells run in a process student code cannot reach (issue 10).

* :mod:`grader.engine.judge.codec`: values as JSON + raw array bytes; decoding never runs code
  (:mod:`grader.engine.judge.message`: one whole message as bytes;
  :mod:`grader.engine.judge.base`: errors, limits, allowed dtypes).
* :mod:`grader.engine.judge.rpc`: the re-entrant request/response :class:`Endpoint`
  (:mod:`grader.engine.judge.handles`: the table of lent objects).
* :mod:`grader.engine.judge.proxy`: ``Remote`` / ``JudgeObject`` and what the judge may lend.
* :mod:`grader.engine.judge.inplace`: in-place changes to arrays (a call's arguments, a judge
  object's attributes) reach their owner, as in one process.
* :mod:`grader.engine.judge.runner`: :class:`Judge` (runs test cells) and :func:`serve_student`.

Wiring (two processes joined by ``socket.socketpair()``)::

    # judge process                                 # student process, at each test cell
    ep = judge_endpoint(sock)                       ep = student_endpoint(sock)
    judge = Judge(ep, setup_source, code_cells)     serve_student(ep, shell.user_ns)
    judge.run_test_cell(test_source)  # raises on failure

``serve_student`` returns when the judge has finished the cell (pass or fail). Once either
side raises :class:`ProtocolError` (malformed message, limit, reply out of order, the peer
gone, an interrupted frame) its endpoint refuses everything: fail the cell and every later
one, and end both processes. Releases of handles ride on the next message rather than being
requests of their own.
"""

from grader.engine.judge.base import Limits, ProtocolError, Refused, StudentError
from grader.engine.judge.handles import HandleTable
from grader.engine.judge.message import decode, encode
from grader.engine.judge.proxy import JudgeObject, Remote, judge_policy
from grader.engine.judge.rpc import Endpoint
from grader.engine.judge.runner import Judge, judge_endpoint, serve_student, student_endpoint

__all__ = [
    "Endpoint", "HandleTable", "Judge", "JudgeObject", "Limits", "ProtocolError", "Refused",
    "Remote", "StudentError", "decode", "encode", "judge_endpoint", "judge_policy",
    "serve_student", "student_endpoint",
]
