--- `workspace/applyEdit` with per-hunk confirmation on Neovim 0.11, which applies every edit
--- at once and ignores change annotations. An edit whose annotations need confirmation is
--- shown hunk by hunk in a diff float (y accept, n reject, a accept the rest, q reject the
--- rest); exactly the accepted hunks are applied and the server is told what happened.
--- Edits without such annotations, and Neovim 0.12+ (which asks by itself), keep Neovim's
--- own handler. The pure rules live in `ouzel.hunks`.
---
--- File operations are done the careful way rather than Neovim 0.11's: a CreateFile makes a
--- buffer for the new file (the server writes it; Neovim would truncate an existing file
--- even with `overwrite = false`), and a DeleteFile of a file that is already gone only
--- drops its buffer. Every buffer an edit changes is attached to the ouzel client first and
--- its changes are flushed before the answer, so the server has the editor's text (the
--- agent writes exactly that, docs/AGENT.md) when it reads the answer.

local api = vim.api
local hunks = require('ouzel.hunks')

local M = {}

M.namespace = api.nvim_create_namespace('ouzel.confirm')

--- Buffers the plugin changed through an ouzel edit since `take_touched` (the agent brings
--- them in line with the disk after a turn).
--- @type table<integer, boolean>
M.touched = {}

--- The touched buffers, forgetting them.
--- @return table<integer, boolean>
function M.take_touched()
  local touched = M.touched
  M.touched = {}
  return touched
end

--- Whether Neovim confirms annotated edits itself (0.12 and later).
--- @return boolean
function M.native()
  return vim.fn.has('nvim-0.12') == 1
end

--- The document's lines as the edit's ranges see them (loading the file if needed).
--- @param uri string
--- @return string[]
local function document_lines(uri)
  local ok, bufnr = pcall(vim.uri_to_bufnr, uri)
  if not ok then
    return {}
  end
  if not api.nvim_buf_is_loaded(bufnr) then
    local path = vim.uri_to_fname(uri)
    if vim.fn.filereadable(path) == 0 then
      return {}
    end
    vim.fn.bufload(bufnr)
  end
  return api.nvim_buf_get_lines(bufnr, 0, -1, false)
end

--- @param uri string
--- @return string
local function display_name(uri)
  local ok, path = pcall(vim.uri_to_fname, uri)
  return ok and vim.fn.fnamemodify(path, ':~:.') or uri
end

--- A text document edit computed for a version the buffer no longer has, described.
--- @param edit table
--- @return string?
local function stale(edit)
  for _, change in ipairs(type(edit.documentChanges) == 'table' and edit.documentChanges or {}) do
    local document = type(change) == 'table' and change.textDocument
    if type(document) == 'table' and type(document.version) == 'number' then
      local bufnr = vim.uri_to_bufnr(document.uri)
      local current = rawget(vim.lsp.util.buf_versions, bufnr)
      if current ~= nil and current ~= document.version then
        return ('%s changed since the edit was made (version %d, the buffer is at %d)'):format(
          display_name(document.uri),
          document.version,
          current
        )
      end
    end
  end
  return nil
end

--- Show one hunk in a float and call `decide` with 'y', 'n', 'a' or 'q'.
--- @param hunk ouzel.Hunk
--- @param position integer
--- @param total integer
--- @param title string
--- @param encoding string
--- @param decide fun(answer: string)
function M.show(hunk, position, total, title, encoding, decide)
  local old, new, first = hunks.preview(hunk, document_lines(hunk.uri), encoding)
  local lines, highlights =
    hunks.float_lines(hunk, position, total, display_name(hunk.uri), old, new, first)
  local buf = api.nvim_create_buf(false, true)
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  for _, mark in ipairs(highlights) do
    api.nvim_buf_set_extmark(buf, M.namespace, mark[1], 0, { line_hl_group = mark[2] })
  end
  vim.bo[buf].modifiable = false
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].filetype = 'ouzelconfirm'
  local width = 20
  for _, line in ipairs(lines) do
    width = math.max(width, vim.fn.strdisplaywidth(line))
  end
  width = math.min(width + 1, vim.o.columns - 4)
  local height = math.min(#lines, math.max(1, vim.o.lines - 6))
  local win = api.nvim_open_win(buf, true, {
    relative = 'editor',
    width = width,
    height = height,
    row = math.max(0, math.floor((vim.o.lines - height) / 2) - 1),
    col = math.max(0, math.floor((vim.o.columns - width) / 2)),
    style = 'minimal',
    border = 'rounded',
    title = ' ' .. title .. ' ',
    title_pos = 'center',
  })
  vim.wo[win].wrap = false
  local done = false
  local function answer(choice)
    if done then
      return
    end
    done = true
    if api.nvim_win_is_valid(win) then
      api.nvim_win_close(win, true)
    end
    decide(choice)
  end
  for key, choice in pairs({ y = 'y', n = 'n', a = 'a', q = 'q', ['<Esc>'] = 'q' }) do
    vim.keymap.set('n', key, function()
      answer(choice)
    end, { buffer = buf, nowait = true, desc = 'ouzel: ' .. choice })
  end
  -- Closing the float any other way rejects what is left: nothing is applied unasked.
  api.nvim_create_autocmd('WinClosed', {
    pattern = tostring(win),
    once = true,
    callback = function()
      vim.schedule(function()
        answer('q')
      end)
    end,
  })
end

--- Ask about each hunk in turn; `finish` gets hunk index -> accepted.
--- @param list ouzel.Hunk[]
--- @param title string
--- @param encoding string
--- @param finish fun(accepted: table<integer, boolean>)
function M.ask(list, title, encoding, finish)
  local accepted = {} --- @type table<integer, boolean>
  local previous_win = api.nvim_get_current_win()
  local function step(position)
    if position > #list then
      if api.nvim_win_is_valid(previous_win) then
        api.nvim_set_current_win(previous_win)
      end
      finish(accepted)
      return
    end
    local hunk = list[position]
    M.show(hunk, position, #list, title, encoding, function(choice)
      if choice == 'a' or choice == 'q' then
        for rest = position, #list do
          accepted[list[rest].index] = choice == 'a'
        end
        step(#list + 1)
      else
        accepted[hunk.index] = choice == 'y'
        step(position + 1)
      end
    end)
  end
  step(1)
end

--- @param value any
--- @return any
local function present(value)
  if value == vim.NIL then
    return nil
  end
  return value
end

--- A CreateFile that would overwrite a file the edit does not allow to, described.
--- @param edit table lsp.WorkspaceEdit
--- @return string?
local function existing_target(edit)
  for _, change in ipairs(present(edit.documentChanges) or {}) do
    if type(change) == 'table' and present(change.kind) == 'create' then
      local options = present(change.options) or {}
      local path = vim.uri_to_fname(change.uri)
      if
        vim.uv.fs_stat(path)
        and present(options.overwrite) ~= true
        and present(options.ignoreIfExists) ~= true
      then
        return ('%s already exists; the edit would create it'):format(display_name(change.uri))
      end
    end
  end
  return nil
end

--- The buffer of `uri`, loaded, listed and attached to `client`.
--- @param uri string
--- @param client? vim.lsp.Client
--- @return integer
local function document_buffer(uri, client)
  local bufnr = vim.uri_to_bufnr(uri)
  if not api.nvim_buf_is_loaded(bufnr) then
    vim.fn.bufload(bufnr)
  end
  vim.bo[bufnr].buflisted = true
  if client and not vim.lsp.buf_is_attached(bufnr, client.id) then
    -- The server learns the buffer's text (didOpen) before the accepted hunks (didChange).
    vim.lsp.buf_attach_client(bufnr, client.id)
  end
  M.touched[bufnr] = true
  return bufnr
end

--- A file operation: create makes a buffer (not a file: the server writes it), delete
--- removes the file if it is still there and drops its buffer, rename is Neovim's.
--- @param change table CreateFile | DeleteFile | RenameFile
--- @param encoding string
--- @param client? vim.lsp.Client
--- @param created table<integer, boolean> buffers made for new files, filled in here
local function file_operation(change, encoding, client, created)
  local kind = present(change.kind)
  if kind == 'create' then
    local bufnr = document_buffer(change.uri, client)
    local options = present(change.options) or {}
    if present(options.overwrite) == true then
      api.nvim_buf_set_lines(bufnr, 0, -1, false, {})
    end
    created[bufnr] = true
  elseif kind == 'delete' then
    local path = vim.uri_to_fname(change.uri)
    local options = present(change.options) or {}
    if vim.uv.fs_stat(path) then
      vim.fs.rm(path, { recursive = present(options.recursive) == true })
    end
    local bufnr = vim.fn.bufnr(path)
    if bufnr > 0 then
      M.touched[bufnr] = nil
      api.nvim_buf_delete(bufnr, { force = true })
    end
  else
    vim.lsp.util.apply_workspace_edit({ documentChanges = { change } }, encoding)
  end
end

--- Apply a workspace edit whose text edits have been checked: text edits with
--- `vim.lsp.util.apply_text_edits` per document, file operations as above; then send the
--- changes to the server at once (not after Neovim's debounce), before the answer.
--- @param edit table lsp.WorkspaceEdit
--- @param encoding string
--- @param client? vim.lsp.Client
local function apply(edit, encoding, client)
  local created = {} --- @type table<integer, boolean>
  if edit.documentChanges then
    for _, change in ipairs(edit.documentChanges) do
      if present(change.kind) then
        file_operation(change, encoding, client, created)
      else
        local bufnr = document_buffer(change.textDocument.uri, client)
        vim.lsp.util.apply_text_edits(change.edits, bufnr, encoding)
      end
    end
    -- A new file's text "a\n" inserted into its empty buffer leaves an empty last line;
    -- Neovim keeps a file's last line end in 'eol' instead, so the buffer is the file.
    for bufnr in pairs(created) do
      local count = api.nvim_buf_line_count(bufnr)
      if count > 1 and api.nvim_buf_get_lines(bufnr, count - 1, count, false)[1] == '' then
        api.nvim_buf_set_lines(bufnr, count - 1, count, false, {})
        vim.bo[bufnr].endofline = true
      end
    end
  else
    for uri, edits in pairs(edit.changes or {}) do
      vim.lsp.util.apply_text_edits(edits, document_buffer(uri, client), encoding)
    end
  end
  if client then
    -- Neovim 0.11 has no public flush; its requests use this one (client.lua).
    pcall(vim.lsp._changetracking.flush, client)
  end
end
M.apply = apply

--- @param list ouzel.Hunk[]
--- @param accepted table<integer, boolean>
--- @return integer
local function count_accepted(list, accepted)
  local count = 0
  for _, hunk in ipairs(list) do
    if accepted[hunk.index] then
      count = count + 1
    end
  end
  return count
end

--- Edits waiting for the user: one float at a time, in the order the edits came.
local queue = {} --- @type fun()[]
local asking = false

local function next_in_queue()
  local start = table.remove(queue, 1)
  asking = start ~= nil
  if start then
    start()
  end
end

--- Run `start(done)` once the edits before it are decided.
--- @param start fun(done: fun(value: any))
--- @return fun(done: fun(value: any))
local function queued(start)
  return function(done)
    table.insert(queue, function()
      start(function(value)
        done(value)
        vim.schedule(next_in_queue)
      end)
    end)
    if not asking then
      next_in_queue()
    end
  end
end

--- Wait for the user's answers: yield when the handler runs in a coroutine (Neovim runs
--- server requests in one, and sends the response when it returns), else pump the loop.
--- @param start fun(done: fun(value: any))
--- @return any
local function await(start)
  start = queued(start)
  local co, main = coroutine.running()
  if co and not main and coroutine.isyieldable() then
    local resumed = false
    start(function(value)
      if not resumed then
        resumed = true
        vim.schedule(function()
          local ok, err = coroutine.resume(co, value)
          if not ok then
            vim.notify(
              'ouzel: the edit could not be answered: ' .. tostring(err),
              vim.log.levels.ERROR
            )
          end
        end)
      end
    end)
    return coroutine.yield()
  end
  local result, finished = nil, false
  start(function(value)
    result, finished = value, true
  end)
  while not finished do
    vim.wait(100, function()
      return finished
    end)
  end
  return result
end

M.await = await

--- The decision and its outcome for an edit that needs confirmation.
--- @param params table lsp.ApplyWorkspaceEditParams
--- @param encoding string the client's offset encoding
--- @param client? vim.lsp.Client the server's client (its buffers are attached and flushed)
--- @return {applied: boolean, failureReason?: string}
function M.confirm(params, encoding, client)
  local edit = params.edit
  local problem = hunks.problem(edit) or stale(edit) or existing_target(edit)
  if problem then
    vim.notify('ouzel: edit not applied: ' .. problem, vim.log.levels.WARN)
    return { applied = false, failureReason = problem }
  end
  local list = hunks.collect(edit)
  local title = type(params.label) == 'string' and params.label or 'ouzel: proposed change'
  local accepted = await(function(done)
    M.ask(list, title, encoding, done)
  end)
  local taken = count_accepted(list, accepted)
  problem = stale(edit) or existing_target(edit)
  if problem then
    vim.notify('ouzel: edit not applied: ' .. problem, vim.log.levels.WARN)
    return { applied = false, failureReason = problem }
  end
  local subset = hunks.subset(edit, list, accepted)
  local has_changes = next(subset.documentChanges or subset.changes or {}) ~= nil
  if taken == 0 and not has_changes then
    vim.notify(('ouzel: %s: every change rejected'):format(title), vim.log.levels.INFO)
    return { applied = false, failureReason = 'the user rejected every change' }
  end
  local ok, err = pcall(apply, subset, encoding, client)
  if not ok then
    vim.notify('ouzel: applying the edit failed: ' .. tostring(err), vim.log.levels.ERROR)
    return { applied = false, failureReason = tostring(err) }
  end
  vim.notify(
    ('ouzel: %s: %d of %d change(s) applied'):format(title, taken, #list),
    vim.log.levels.INFO
  )
  return { applied = true }
end

--- The `workspace/applyEdit` handler of the ouzel client (lsp/ouzel.lua).
--- @param err any
--- @param params any
--- @param ctx lsp.HandlerContext
function M.handler(err, params, ctx)
  local default = vim.lsp.handlers['workspace/applyEdit']
  if type(params) ~= 'table' or type(params.edit) ~= 'table' then
    return default(err, params, ctx)
  end
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  local encoding = client and client.offset_encoding or 'utf-16'
  if M.native() or not hunks.needs_confirmation(params.edit) then
    if M.native() or not hunks.has_file_operations(params.edit) then
      return default(err, params, ctx)
    end
    -- An undo of the agent (docs/AGENT.md): buffers set back, created files deleted; the
    -- server has already deleted them on disk, which Neovim's own handler treats as an error.
    local problem = hunks.problem(params.edit) or existing_target(params.edit)
    if problem then
      return { applied = false, failureReason = problem }
    end
    local ok, failure = pcall(apply, params.edit, encoding, client)
    return ok and { applied = true } or { applied = false, failureReason = tostring(failure) }
  end
  return M.confirm(params, encoding, client)
end

return M
