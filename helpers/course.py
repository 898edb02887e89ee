"""Facts about the course itself: where it lives and which lessons it has.

Where the course lives is said once, here: the GitHub repository and the
branch or tag that learners get.  The Colab badges, the Colab set-up lines of
every notebook (both written by ``tools/make_student.py``) and the README's
links all come from these two lines, so a fork or a course's own host changes
them and runs ``make notebooks`` (the README's instructor section says how).
``tools/make_student.py`` refuses values that do not make a valid URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GITHUB_REPO = "bncourse/batchnorm-course"  # owner/name on github.com
RELEASE = "main"  # a branch, or a tag such as "v1.0" once the course is released

REPO_URL = f"https://github.com/{GITHUB_REPO}"

# GitHub's rules: an owner is 1-39 letters, digits or single hyphens; a name is
# letters, digits, '.', '_' or '-'.  A ref is what `git check-ref-format` allows,
# kept to the characters that need no quoting in a URL or a shell.
_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}"
_NAME = r"[A-Za-z0-9._-]{1,100}"
_REF = r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,99}"


def location_problems(repo: str | None = None, release: str | None = None) -> list[str]:
    """What is wrong with the repository and release (empty when both are valid)."""
    repo = GITHUB_REPO if repo is None else repo
    release = RELEASE if release is None else release
    problems = []
    match = re.fullmatch(rf"({_OWNER})/({_NAME})", repo)
    if not match or match.group(2) in {".", ".."} or repo.endswith(".git"):
        problems.append(
            f"GITHUB_REPO = {repo!r} is not a GitHub repository: write owner/name, "
            "e.g. 'my-university/batchnorm-course' (no URL, no .git)"
        )
    if (
        not re.fullmatch(_REF, release)
        or ".." in release
        or release.endswith((".", "/", ".lock"))
        or "//" in release
    ):
        problems.append(
            f"RELEASE = {release!r} is not a valid branch or tag name, e.g. 'main' "
            "or 'v1.0'"
        )
    return problems


def install_url() -> str:
    """What Colab's set-up cell gives pip: the course package at ``RELEASE``."""
    return f"git+https://github.com/{GITHUB_REPO}@{RELEASE}"


@dataclass(frozen=True)
class Lesson:
    """A lesson, declared once; every other list of lessons is derived from these.

    A lesson is four files: ``solutions/<stem>.ipynb`` (the learner copy in
    ``notebooks/`` is generated), ``helpers/checks/lessonNN.py`` with its
    public checks in ``__all__`` (when ``has_checks``), ``tests/mutants/lessonNN.py``
    with a wrong implementation for each check (when ``has_checks``), and this
    entry.  ``references`` names the records it quotes from ``data/reference/``;
    ``quiz`` says whether the question bank has questions on it (bank key
    ``number``).  ``tests/test_course.py`` fails when a file is missing.
    """

    number: str
    slug: str
    title: str
    purpose: str
    prerequisites: str
    minutes: int
    has_checks: bool = True
    references: tuple[str, ...] = ()
    quiz: bool = True

    @property
    def filename(self) -> str:
        return f"{self.number}_{self.slug}.ipynb"

    @property
    def stem(self) -> str:
        return f"{self.number}_{self.slug}"

    @property
    def checks_module(self) -> str | None:
        """The module of its checks, relative to ``helpers.checks``."""
        return f"lesson{self.number}" if self.has_checks else None

    @property
    def mutants_module(self) -> str | None:
        """The module of its wrong implementations (in the test suite)."""
        return f"tests.mutants.lesson{self.number}" if self.has_checks else None


LESSONS = (
    Lesson(
        "00",
        "setup_and_conventions",
        "Setup and conventions",
        "How to use this course, the notation every lesson uses, and the "
        "conventions that make batch norm implementations disagree.",
        "Python and NumPy basics",
        20,
    ),
    Lesson(
        "01",
        "covariate_shift",
        "From covariate shift to internal covariate shift",
        "See covariate shift, why feature scale and depth make gradient descent "
        "hard, measure internal covariate shift in a real network, and weigh "
        "the evidence on why batch norm works.",
        "lesson 00; gradient descent",
        60,
        references=(
            "01_subsets",
            "01_gradients",
            "01_figure1",
            "01_saturation",
            "01_learning_rates",
            "01_descent",
        ),
    ),
    Lesson(
        "02",
        "bn_forward_backward",
        "Batch norm by hand: forward and backward in NumPy",
        "Implement batch norm's forward pass, derive its backward pass twice "
        "(stage by stage and in closed form), check it three ways, and extend it "
        "to convolutions and layer norm.",
        "lesson 00; NumPy broadcasting; the chain rule",
        90,
        references=("02_gamma_beta", "02_benchmark"),
    ),
    Lesson(
        "03",
        "inference_running_stats",
        "Inference: running statistics, train and eval mode",
        "Why batch norm changes at test time, PyTorch's running statistics "
        "rebuilt exactly, the classic train/eval bugs with their fixes, and "
        "folding batch norm away for deployment.",
        "lessons 00 and 02; torch.nn.Module basics",
        75,
        references=(
            "03_tiny_batches",
            "03_startup",
            "03_benchmark",
            "03_batch_mates",
            "03_recalibration",
        ),
    ),
    Lesson(
        "04",
        "batch_renorm",
        "Small and non-i.i.d. batches: Batch Renormalization",
        "Measure where batch norm breaks, derive batch renormalization, "
        "implement it (NumPy backward, PyTorch module, schedule) and compare "
        "it with batch norm and group norm over seeds.",
        "lessons 02 and 03",
        75,
        references=(
            "04_small_batches",
            "04_modes_bn",
            "04_renorm",
            "04_modes_renorm",
            "04_attached",
        ),
    ),
    Lesson(
        "05",
        "cifar10_comparison",
        "CIFAR-10 with and without batch norm",
        "Train the same CNN with and without batch norm, fast on a GPU and "
        "honest on a CPU, and test five claims about batch norm with a "
        "measurement each.",
        "lessons 00-03; convolutional networks",
        60,
        references=(
            "05_cifar10",
            "05_lr_stress",
            "05_inception",
            "05_benchmark",
            "05_race",
            "05_seeds",
        ),
    ),
    Lesson(
        "06",
        "quiz",
        "The quiz",
        "Questions on every lesson, with instant feedback that explains each "
        "answer and the misconception behind each wrong one.",
        "lessons 00-05 (07 and 08 for their questions)",
        30,
        has_checks=False,  # graded by the quiz's own score, not by checks
        quiz=False,
    ),
    Lesson(
        "07",
        "why_batchnorm_works",
        "Why does batch norm work? The evidence, measured",
        "Put each explanation of batch norm on trial with an experiment: noisy batch "
        "norm and a gradient measure of internal covariate shift, the loss landscape "
        "along the gradient, initial scales, scale invariance and weight decay, "
        "ablations, batch noise as a regulariser, and other normalisers trained.",
        "lessons 01-03",
        75,
        references=(
            "07_noisy",
            "07_ics",
            "07_landscape",
            "07_collapse",
            "07_init",
            "07_init_control",
            "07_invariance",
            "07_decay",
            "07_ablation",
            "07_bn_only",
            "07_ghost",
            "07_norms",
        ),
    ),
    Lesson(
        "08",
        "batchnorm_across_devices",
        "Batch norm across devices: synchronised statistics",
        "See that data-parallel batch norm is ghost batch norm, write synchronised "
        "batch norm (forward, backward, running statistics) on torch.distributed and "
        "train a network with it in real processes, merge the statistics of unequal "
        "shards, recompute population statistics (PreciseBN) and measure what "
        "synchronisation costs.",
        "lessons 02-04",
        60,
        references=(
            "08_ghost",
            "08_real",
            "08_capstone",
            "08_precise",
            "08_cost",
            "04_small_batches",
        ),
    ),
)


def checked_lessons() -> tuple[Lesson, ...]:
    """Lessons whose exercises have checks (and mutants)."""
    return tuple(item for item in LESSONS if item.has_checks)


def quiz_keys() -> tuple[str, ...]:
    """The bank's lesson keys: general questions, then one per lesson."""
    return ("general", *(item.number for item in LESSONS if item.quiz))


def lesson(key: str) -> Lesson:
    """Look a lesson up by number ("02"), stem or file name."""
    key = key.removesuffix(".ipynb").split("/")[-1]
    for item in LESSONS:
        if key in (item.number, item.stem):
            return item
    raise KeyError(f"no lesson {key!r}; known: {[x.stem for x in LESSONS]}")


def colab_url(folder: str, lesson_: Lesson) -> str:
    return (
        "https://colab.research.google.com/github/"
        f"{GITHUB_REPO}/blob/{RELEASE}/{folder}/{lesson_.filename}"
    )
