"""The chat product's HTTP server: OpenAI-compatible API, web chat UI and trainer workspace.

Layout (vLLM's): ``protocol`` holds the pydantic request/response models; ``service.ChatService``
is handed its engine (through ``scheduler.BatchScheduler``), moderation hook and store, and knows
nothing of HTTP; ``openai_routes`` is a thin router; ``app.create_app`` wires it all together and
keeps every piece of state on ``app.state`` (no module globals). ``chatrlhf serve`` (cli/serve.py)
builds the pieces and runs uvicorn.

What other routers (``server.web``, ``server.workspace``) can rely on
-----------------------------------------------------------------------
``create_app`` includes ``chatrlhf.server.web.router`` and ``chatrlhf.server.workspace.router``
when those modules exist, and mounts ``server/static/`` at ``/static`` when it exists.

``app.state`` holds:
  - ``store``: the ``chatrlhf.store.Store`` (or None when the app runs without one, in tests);
  - ``service``: the ``ChatService`` (see below);
  - ``moderation``: the moderation hook, ``moderation(text) -> ModerationResult``;
  - ``model_name``: the served model's id (what ``GET /v1/models`` lists);
  - ``no_auth``: True when ``chatrlhf serve --no-auth`` (loopback only) is on.

Auth dependencies, all in ``chatrlhf.server.auth`` (use them with ``Depends``)::

    from chatrlhf.server.auth import current_user, optional_user, require_role, SESSION_COOKIE

    @router.get("/api/conversations")
    def list_convs(user = Depends(current_user)): ...

    @router.post("/workspace/rank")
    def rank(user = Depends(require_role("trainer"))): ...   # trainer or admin

- ``current_user``: the store's user for ``Authorization: Bearer <api key>`` (checked against the
  store's hashed keys) OR the web session cookie ``SESSION_COOKIE`` (``"chatrlhf_session"``; its
  value is a session token the store issued at login). With ``--no-auth`` and neither credential,
  a local user is used. Otherwise: 401 with an OpenAI-style error body.
- ``optional_user``: the same, but None instead of 401 (for pages that redirect to a login page).
- ``require_role(role)``: roles are ordered user < trainer < admin; a lower role gets 403. The
  check is server-side on every request.
- Errors are raised as ``chatrlhf.server.errors.APIError(status, message, type=..., param=...)``
  and rendered as ``{"error": {"message", "type", "param", "code"}}`` by the app.

Generating from other routers (the web UI, the workspace) goes through the same service, so every
reply is batched with API traffic, moderated, and bounded by the same limits::

    from chatrlhf.server.service import GenOptions, Reply
    service = request.app.state.service
    messages = service.check_messages(messages)            # APIError 400 with a clear message
    prep = await service.prepare_messages(messages, GenOptions(max_tokens=256, temperature=0.7))
    replies = [Reply() for _ in range(prep.options.n)]     # optional: totals per choice
    async for ev in service.generate(prep, replies):       # ReplyEvent(index, text, finish_reason)
        ...                                                # finish_reason "content_filter" when
                                                           # moderation blocked the input or reply
    # prep.blocked: the ModerationResult that blocked the input (the reply is service.REFUSAL).
    # Closing the generator early (client gone, stop button) cancels the rows in the engine.
"""
