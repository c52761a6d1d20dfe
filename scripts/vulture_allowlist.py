"""Names that vulture (the dead-code check in scripts/test) cannot see being used.

Each is called by a framework, by name, never by our code; listing them here keeps the check
strict for everything else. Add a name only with the reason beside it.
"""

# ruff: noqa: B018, F821
# http.server calls do_<METHOD> by the request's method and reads these class attributes
_.do_GET, _.do_HEAD, _.do_POST, _.do_PUT, _.do_DELETE, _.do_PATCH, _.do_OPTIONS
_.log_message, _.send_error, _.close_connection
_.protocol_version, _.server_version, _.sys_version
# socketserver reads these class attributes; HTTPServer's server_bind sets the two names
_.daemon_threads, _.request_queue_size, _.address_family, _.server_name, _.server_port
# the schema compiler looks its keyword methods up by name: getattr(self, "_kw_" + keyword)
_._kw_ref, _._kw_enum, _._kw_const, _._kw_required, _._kw_items
_._kw_minItems, _._kw_minLength, _._kw_pattern, _._kw_x_unhonoured
# a module-level __getattr__ (PEP 562) makes jsonschema's classes lazily
__getattr__
# watchdog calls its handler's on_any_event
_.on_any_event
# a logging.LogRecord attribute set by a test, read back by the JSON formatter via getattr
_.object
# pytest uses these by name: module marks, autouse fixtures
pytestmark, no_leftover_processes
# engine/ssh.py: urllib3 calls a pool's _new_conn, requests an adapter's get_connection;
# docker-py reads an ssh socket's file's .channel and closes the client's _custom_adapter
_._new_conn, _.get_connection, _.channel, _._custom_adapter
# configparser calls optionxform on every key (the unit test keeps keys' case)
_.optionxform
# socketserver calls handle_error when a handler raised (a client broke a limit mid-request)
_.handle_error
# urllib's opener calls the redirect handler's redirect_request by name
_.redirect_request
# html.parser.HTMLParser calls these by name (the browser test's DOM reader)
_.handle_starttag, _.handle_endtag, _.handle_data
# socketserver.StreamRequestHandler reads it by name (TCP_NODELAY for the simulated engine)
_.disable_nagle_algorithm
