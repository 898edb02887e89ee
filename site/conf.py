"""Sphinx configuration of the course's website (built by tools/build_site.py).

Sphinx + MyST-NB + the book theme is Jupyter Book 1's stack, used directly:
the notebooks arrive executed (tools/build_site.py runs and caches them), so
MyST-NB only renders them.  Nothing is loaded from outside the site: MathJax
is a local copy in _static/mathjax, and no widget JavaScript is added.
"""

from helpers import course  # where the course lives, said once

project = "Batch Normalization, hands-on"
author = "the course's authors"
copyright = "the course's authors, MIT licence"

extensions = ["myst_nb"]
exclude_patterns = ["notebooks/**", "_build", "**.ipynb_checkpoints"]

# The notebooks come executed; MyST-NB renders them as they are.
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no widget manager from a CDN: widgets have static fallbacks
nb_render_markdown_format = "myst"  # markdown outputs (the quiz) get maths too
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# MathJax 3 from the site itself (tools/build_site.py copies it into _static).
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_css_files = ["bncourse-site.css"]
html_last_updated_fmt = None
html_theme_options = {
    "repository_url": course.REPO_URL,
    "use_repository_button": True,
    "use_download_button": False,  # each page links its learner notebook instead
    "use_fullscreen_button": False,
    "show_toc_level": 2,
    "home_page_in_toc": True,
}
html_show_sourcelink = False
html_copy_source = False  # the pages link the learner notebooks instead
