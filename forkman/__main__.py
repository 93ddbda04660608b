"""`python -m forkman`."""

from forkman.cli import main

if __name__ == "__main__":
    main()
