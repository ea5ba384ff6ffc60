"""The course's public address, defined once. Badges and links in notebooks and READMEs must agree with
it (tests/test_notebooks.py checks); change it here, and that test names every place that must follow."""

GITHUB_REPO = "ernie-course/ernie-lora-course"  # owner/name on GitHub
BRANCH = "main"
REPO_URL = f"https://github.com/{GITHUB_REPO}"


def colab_url(notebook_path: str) -> str:
    """The "Open in Colab" address of a notebook, given its path inside the repository."""
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{BRANCH}/{notebook_path}"


def raw_url(path: str) -> str:
    return f"https://raw.githubusercontent.com/{GITHUB_REPO}/{BRANCH}/{path}"


if __name__ == "__main__":
    print(REPO_URL)
    print(raw_url("requirements.txt"))
