"""Entry point of one ``execute`` run inside the sandbox (the fork server preloads the guest)."""

from forkman.agent._guest import main

main()
