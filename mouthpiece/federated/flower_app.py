"""The Flower App components a SuperLink and SuperNodes load by reference
("mouthpiece.federated.flower_app:server_app" / ":client_app"; see `deploy`).

Importing this module builds the two app objects (cheap: no model, no data is loaded; that
happens per run and per node from their configs). Nothing else imports it.
"""

from mouthpiece.federated.deploy import deployed_client_app, deployed_server_app

server_app = deployed_server_app()
client_app = deployed_client_app()
