-- wrk script for the POST half of bench/proxy.sh: a small JSON body, like a REST create.
wrk.method = "POST"
wrk.body = '{"name":"Ada Lovelace","born":1815}'
wrk.headers["Content-Type"] = "application/json"
