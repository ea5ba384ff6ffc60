"""Which hosted notebook the course thinks it is on decides where its work folder goes (course_lib.platforms)."""

import pytest

from course_lib import platforms
from course_lib.paths import WORK_ENV, work_dir


def found(environ=(), modules=(), folders=()) -> str:
    return platforms.detect(environ=dict.fromkeys(environ, "1"), modules=dict.fromkeys(modules),
                            exists=lambda path: str(path) in folders).key


@pytest.mark.parametrize("machine, expected", [
    (dict(modules=["google.colab"]), "colab"),
    (dict(environ=["COLAB_RELEASE_TAG"]), "colab"),
    (dict(environ=["KAGGLE_KERNEL_RUN_TYPE"], folders=["/kaggle/working"]), "kaggle"),
    (dict(folders=["/home/aistudio"]), "aistudio"),
    (dict(folders=["/mnt/workspace"]), "modelscope"),
    (dict(), "local"),
    # Colab first: a Colab runtime that happens to have a /mnt/workspace is still Colab.
    (dict(modules=["google.colab"], folders=["/mnt/workspace"]), "colab"),
])
def test_each_platform_is_recognised_by_what_it_sets(machine, expected):
    assert found(**machine) == expected


def test_every_hosted_platform_names_a_kept_folder():
    hosted = [platforms.COLAB, platforms.KAGGLE, platforms.AISTUDIO, platforms.MODELSCOPE]
    assert all(p.kept is not None and p.kept.is_absolute() for p in hosted)
    assert len({p.kept for p in hosted}) == len(hosted)
    assert platforms.LOCAL.kept is None


def test_the_work_folder_setting_wins_over_the_platform(monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setenv(WORK_ENV, str(tmp_path / "mine"))
    assert work_dir() == (tmp_path / "mine").resolve()


def test_without_the_setting_the_work_folder_is_in_the_platforms_kept_folder(monkeypatch, tmp_path):
    monkeypatch.delenv(WORK_ENV, raising=False)
    monkeypatch.setattr(platforms, "KAGGLE", platforms.Platform("kaggle", "Kaggle", tmp_path / "kaggle-working"))
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert work_dir() == (tmp_path / "kaggle-working" / "ernie-course").resolve()


def test_the_fallback_finds_the_copy_out_script_in_the_install_cells_clone(monkeypatch, tmp_path):
    """The install cell clones the course beside the notebook (os.path.abspath("ernie-lora-course")); where
    course_lib is installed as a package, that clone is where notebook 5's fallback finds the script."""
    from course_lib import fallbacks

    script = tmp_path / fallbacks.CLONE_NAME / "examples" / "finetune_ernie.py"
    script.parent.mkdir(parents=True)
    script.write_text("")
    monkeypatch.setattr(fallbacks, "__file__", str(tmp_path / "site-packages" / "course_lib" / "fallbacks.py"))
    monkeypatch.chdir(tmp_path)
    assert fallbacks.copy_out_script() == script
    (tmp_path / "site-packages").mkdir()
    monkeypatch.chdir(tmp_path / "site-packages")
    with pytest.raises(FileNotFoundError, match="clone the course repository to"):
        fallbacks.copy_out_script()
