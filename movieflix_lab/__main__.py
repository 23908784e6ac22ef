"""``python -m movieflix_lab`` works like the ``movieflix-lab`` command."""

from movieflix_lab.cli import main

if __name__ == "__main__":
    main()
