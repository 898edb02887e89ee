"""Facts about the course itself: where it lives and which lessons it has.

One constant holds the repository and the release tag.  The Colab badges, the
Colab set-up lines of every notebook (both written by
``tools/make_student.py``) and the README's links all come from here, so a
fork changes these two lines and runs ``make notebooks``.
"""

from __future__ import annotations

from dataclasses import dataclass

GITHUB_REPO = "bncourse/batchnorm-course"
RELEASE = "main"  # a tag such as "v1.0" once the course is released

REPO_URL = f"https://github.com/{GITHUB_REPO}"
COLAB_CLONE_DIR = "/content/batchnorm-course"


@dataclass(frozen=True)
class Lesson:
    number: str
    slug: str
    title: str
    purpose: str
    prerequisites: str
    minutes: int

    @property
    def filename(self) -> str:
        return f"{self.number}_{self.slug}.ipynb"

    @property
    def stem(self) -> str:
        return f"{self.number}_{self.slug}"


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
    ),
    Lesson(
        "06",
        "quiz",
        "The quiz",
        "Questions on every lesson, with instant feedback that explains each "
        "answer and the misconception behind each wrong one.",
        "lessons 00-05",
        30,
    ),
)


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
