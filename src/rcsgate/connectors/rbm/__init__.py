"""Google RCS Business Messaging (RBM): the connector, its wire rules and a local RBM for development.

* ``protocol`` — what both ends of the wire agree on: URLs, the message id and postback encodings,
  the event envelope and its signature;
* ``content`` — BSG content to Google's AgentMessage, and Google's limits checked at accept time;
* ``connector`` — the connector the dispatcher calls (send, revoke) with service-account tokens;
* ``events`` — Google's events decoded into reports, clicks and replies;
* ``fake`` — the local RBM that ``rcsgate simulator`` serves.
"""
