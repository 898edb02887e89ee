"""The grader's machinery (``tools/grade.py`` is its command line).

* ``remote``: the learner's functions called from the grader's process: the
  kernel computes their outputs for inputs the grader draws, the comparison
  with PyTorch happens here, in a process the submission never touches.
* ``sandbox``: the kernel's prison (bubblewrap) and resource limits.
* ``flags``: what a submission does that an instructor should read about
  (an exercise solved by calling the library it re-implements, tampering).
* ``identity``: who handed a submission in, from where the LMS put it.
* ``quizscore``: the quiz scored from the choices an answers file records.
* ``safe``: CSV cells no spreadsheet runs, unique output names, escaped HTML.
* ``report``: feedback pages, the class report, gradebooks.
"""
