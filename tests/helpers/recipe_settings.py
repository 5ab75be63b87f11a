# recipe_settings.py DROPIN DOCKERFILE: prints "dropin|docker NAME=VALUE" for
# each setting of the recipes.
import re, shlex, sys
dropin, docker = open(sys.argv[1]).read(), open(sys.argv[2]).read()
for line in dropin.splitlines():
    if line.startswith("Environment="):
        for word in shlex.split(line[len("Environment="):]):
            print("dropin", word.replace("%%", "%"))
docker = docker.replace("\\\n", " ")
for line in docker.splitlines():
    if line.startswith("ENV "):
        for word in shlex.split(line[4:]):
            print("docker", word)
