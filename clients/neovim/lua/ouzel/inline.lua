--- Ghost text on Neovim 0.11: asks for `textDocument/inlineCompletion` when typing pauses in
--- insert mode and shows the suggestion as virtual text (extra lines as virtual lines).
---
--- A suggestion stays valid while the text between its start and the cursor is a prefix of it:
--- typing what it suggests, or accepting part of it, keeps the rest on screen without a new
--- request. Moving the cursor, leaving insert mode or the buffer clears it.

local api = vim.api
local text = require('ouzel.text')

local M = {}

local METHOD = 'textDocument/inlineCompletion'
local TRIGGER_INVOKED, TRIGGER_AUTOMATIC = 1, 2
local REQUEST_CANCELLED, CONTENT_MODIFIED = -32800, -32801

local ghost_ns = api.nvim_create_namespace('ouzel.ghost')
-- Anchors follow edits, so a suggestion's range stays right while the user types.
local anchor_ns = api.nvim_create_namespace('ouzel.anchor')

--- @class ouzel.Item
--- @field client_id integer
--- @field text string the whole text the item puts in place of its range
--- @field start_mark integer extmark at the start of the range
--- @field end_mark integer extmark at the end of the range
--- @field command? table the item's command, run when it is accepted
--- @field raw table the item as the server sent it
--- @field reported_shown? boolean

--- @class ouzel.BufferState
--- @field bufnr integer
--- @field client_id integer
--- @field augroup integer
--- @field timer? uv.uv_timer_t
--- @field seq integer number of the newest request; older answers are dropped
--- @field pending? integer id of the request in flight
--- @field items ouzel.Item[]
--- @field index integer
--- @field shown? string text shown as ghost text right now
--- @field last {tick: integer, row: integer, col: integer}
local State = {}
State.__index = State

--- @type table<integer, ouzel.BufferState>
local states = {}

M.enabled = true

--- @param bufnr integer
--- @param client vim.lsp.Client
--- @return ouzel.BufferState
local function new_state(bufnr, client)
  local self = setmetatable({
    bufnr = bufnr,
    client_id = client.id,
    augroup = api.nvim_create_augroup('ouzel.inline.' .. bufnr, { clear = true }),
    seq = 0,
    items = {},
    index = 1,
    last = { tick = -1, row = -1, col = -1 },
  }, State)
  self:create_autocmds()
  return self
end

function State:create_autocmds()
  local function on(events, fn)
    api.nvim_create_autocmd(events, { group = self.augroup, buffer = self.bufnr, callback = fn })
  end
  on('InsertEnter', function()
    self:remember_position()
    self:schedule()
  end)
  on({ 'TextChangedI', 'TextChangedP' }, function()
    self:on_cursor_or_text()
  end)
  on('CursorMovedI', function()
    self:on_cursor_or_text()
  end)
  on({ 'InsertLeave', 'BufLeave' }, function()
    self:reset()
  end)
  on('CompleteChanged', function()
    self:hide()
  end)
  on({ 'BufWipeout', 'BufUnload' }, function()
    self:destroy()
  end)
end

--- @return vim.lsp.Client?
function State:client()
  local client = vim.lsp.get_client_by_id(self.client_id)
  if client and not client:is_stopped() then
    return client
  end
end

--- @return integer? row 0-based
--- @return integer? col byte column
function State:cursor()
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) ~= self.bufnr then
    return nil, nil
  end
  local pos = api.nvim_win_get_cursor(win)
  return pos[1] - 1, pos[2]
end

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

function State:remember_position()
  local row, col = self:cursor()
  self.last = { tick = api.nvim_buf_get_changedtick(self.bufnr), row = row or -1, col = col or -1 }
end

--- Typing (the text changed) keeps a suggestion that still fits; a bare cursor move drops it.
function State:on_cursor_or_text()
  local tick = api.nvim_buf_get_changedtick(self.bufnr)
  local row, col = self:cursor()
  if tick == self.last.tick and row == self.last.row and col == self.last.col then
    return -- the second event of the same keystroke
  end
  local edited = tick ~= self.last.tick
  self.last = { tick = tick, row = row or -1, col = col or -1 }
  if edited then
    self:render()
  else
    self:clear()
  end
  self:schedule()
end

-- Requests ---------------------------------------------------------------------------------

function State:stop_timer()
  if self.timer then
    self.timer:stop()
  end
end

--- Ask for a suggestion once typing pauses.
function State:schedule()
  if not (M.enabled and require('ouzel.config').get().auto_trigger) then
    return
  end
  self.timer = self.timer or vim.uv.new_timer()
  self.timer:stop()
  self.timer:start(
    require('ouzel.config').get().debounce_ms,
    0,
    vim.schedule_wrap(function()
      self:request(TRIGGER_AUTOMATIC)
    end)
  )
end

function State:cancel()
  self.seq = self.seq + 1
  local client = self:client()
  if self.pending and client then
    client:cancel_request(self.pending)
  end
  self.pending = nil
end

--- @param trigger_kind integer
function State:request(trigger_kind)
  local client = self:client()
  local row, col = self:cursor()
  if not (M.enabled and client and row and in_insert_mode()) then
    return
  end
  self:cancel()
  local seq = self.seq
  local tick = api.nvim_buf_get_changedtick(self.bufnr)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = trigger_kind }
  local ok, id = client:request(METHOD, params, function(err, result)
    if seq ~= self.seq then
      return -- a newer request, a cancel, or a reset came after this one
    end
    self.pending = nil
    local edited = api.nvim_buf_is_valid(self.bufnr)
      and api.nvim_buf_get_changedtick(self.bufnr) ~= tick
    self:on_result(client, err, result, row, col, edited)
  end, self.bufnr)
  if ok then
    self.pending = id
  end
end

--- @param client vim.lsp.Client
--- @param err? lsp.ResponseError
--- @param result? lsp.InlineCompletionList|lsp.InlineCompletionItem[]
--- @param row integer cursor row when the request was made
--- @param col integer cursor column when the request was made
--- @param edited boolean the buffer changed while the server worked
function State:on_result(client, err, result, row, col, edited)
  if err then
    if err.code ~= REQUEST_CANCELLED and err.code ~= CONTENT_MODIFIED then
      require('ouzel.config').warn_once(
        'inline-error',
        'inline completion failed: ' .. tostring(err.message) .. ' (see :LspLog)'
      )
    end
    return
  end
  if not (in_insert_mode() and self:cursor()) then
    return
  end
  local raw_items = type(result) == 'table' and (result.items or result) or {}
  if type(raw_items) ~= 'table' then
    raw_items = {}
  end
  if #raw_items == 0 and edited then
    -- Nothing for text that has changed since: that says nothing about what is shown now
    -- (the server drops answers for old versions); the next request will tell.
    return
  end
  self:drop_items()
  for _, raw in ipairs(raw_items) do
    local item = self:make_item(client, raw, row, col)
    if item then
      table.insert(self.items, item)
    end
  end
  self.index = 1
  self:render()
end

--- @param client vim.lsp.Client
--- @param raw table
--- @param row integer
--- @param col integer
--- @return ouzel.Item?
function State:make_item(client, raw, row, col)
  if type(raw) ~= 'table' then
    return nil
  end
  local insert = raw.insertText
  if type(insert) == 'table' and insert.kind == 'snippet' then
    insert = text.snippet_to_text(insert.value)
  end
  if type(insert) ~= 'string' or insert == '' then
    return nil
  end
  local srow, scol, erow, ecol = row, col, row, col
  if type(raw.range) == 'table' then
    srow, scol = text.byte_position(self.bufnr, raw.range.start, client.offset_encoding)
    erow, ecol = text.byte_position(self.bufnr, raw.range['end'], client.offset_encoding)
    if not (srow and erow) then
      return nil -- a range outside the buffer: ignore the item rather than guess
    end
  end
  return {
    client_id = client.id,
    text = insert,
    start_mark = api.nvim_buf_set_extmark(self.bufnr, anchor_ns, srow, scol, {
      right_gravity = false,
    }),
    end_mark = api.nvim_buf_set_extmark(self.bufnr, anchor_ns, erow, ecol, {
      right_gravity = true,
    }),
    command = raw.command,
    raw = raw,
  }
end

-- Showing ----------------------------------------------------------------------------------

--- @param mark integer
--- @return integer row
--- @return integer col
function State:mark_position(mark)
  local pos = api.nvim_buf_get_extmark_by_id(self.bufnr, anchor_ns, mark, {})
  return pos[1], pos[2]
end

--- What the current item would still add at the cursor, or nil when it no longer fits.
--- @return string? rest
--- @return ouzel.Item? item
--- @return string typed the part of the item already in the buffer
function State:remaining()
  local item = self.items[self.index]
  local row, col = self:cursor()
  if not (item and row) then
    return nil, nil, ''
  end
  local srow, scol = self:mark_position(item.start_mark)
  if not srow or row < srow or (row == srow and col < scol) then
    return nil, item, ''
  end
  local typed = table.concat(api.nvim_buf_get_text(self.bufnr, srow, scol, row, col, {}), '\n')
  if #typed >= #item.text or item.text:sub(1, #typed) ~= typed then
    return nil, item, typed
  end
  return item.text:sub(#typed + 1), item, typed
end

function State:hide()
  api.nvim_buf_clear_namespace(self.bufnr, ghost_ns, 0, -1)
  self.shown = nil
end

function State:render()
  self:hide()
  if not (M.enabled and in_insert_mode()) or vim.fn.pumvisible() == 1 then
    return
  end
  local rest, item = self:remaining()
  if not (rest and item) then
    if item then
      self:drop_items() -- typed past it or away from it
    end
    return
  end
  local row, col = self:cursor()
  assert(row and col)
  local shown = rest
  -- When the item also replaces text after the cursor (e.g. a closing bracket) that it ends
  -- with, that text is already on screen: show only what comes before it.
  local erow, ecol = self:mark_position(item.end_mark)
  if erow == row and ecol > col then
    local tail = api.nvim_buf_get_text(self.bufnr, row, col, row, ecol, {})[1]
    if vim.endswith(shown, tail) and not shown:find('\n', 1, true) then
      shown = shown:sub(1, #shown - #tail)
    end
  end
  local lines = vim.split(shown, '\n', { plain = true })
  local hint = #self.items > 1 and (' (%d/%d)'):format(self.index, #self.items) or nil
  local opts = { hl_mode = 'combine', priority = 200 }
  local tabstop = vim.bo[self.bufnr].tabstop
  if lines[1] ~= '' or #lines == 1 then
    opts.virt_text = { { text.expand_tabs(lines[1], tabstop), 'OuzelGhostText' } }
    opts.virt_text_pos = 'inline'
  end
  if #lines > 1 then
    opts.virt_lines = {}
    for i = 2, #lines do
      opts.virt_lines[i - 1] = { { text.expand_tabs(lines[i], tabstop), 'OuzelGhostText' } }
    end
  end
  if hint then
    local last = opts.virt_lines and opts.virt_lines[#opts.virt_lines] or opts.virt_text
    if last then
      table.insert(last, { hint, 'OuzelGhostTextHint' })
    end
  end
  api.nvim_buf_set_extmark(self.bufnr, ghost_ns, row, col, opts)
  self.shown = rest
  if not item.reported_shown then
    item.reported_shown = true
    local client = self:client()
    if client then
      require('ouzel.telemetry').shown(client, item)
    end
  end
end

function State:drop_items()
  api.nvim_buf_clear_namespace(self.bufnr, anchor_ns, 0, -1)
  self.items = {}
  self.index = 1
end

--- Hide the suggestion and forget it.
function State:clear()
  self:hide()
  self:drop_items()
end

--- Clear, and stop the timer and the request in flight.
function State:reset()
  self:stop_timer()
  self:cancel()
  self:clear()
end

function State:destroy()
  self:reset()
  if self.timer then
    self.timer:close()
    self.timer = nil
  end
  pcall(api.nvim_del_augroup_by_id, self.augroup)
  states[self.bufnr] = nil
end

-- Accepting --------------------------------------------------------------------------------

--- Insert `piece` at the cursor and move the cursor after it.
--- @param row integer
--- @param col integer
--- @param piece string
function State:insert_at_cursor(row, col, piece)
  local lines = vim.split(piece, '\n', { plain = true })
  api.nvim_buf_set_text(self.bufnr, row, col, row, col, lines)
  local end_row = row + #lines - 1
  local end_col = (#lines == 1 and col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { end_row + 1, end_col })
end

--- Accept the whole suggestion, or its next word or line.
--- @param how 'all'|'word'|'line'
--- @return boolean accepted
function State:accept(how)
  local rest, item, typed = self:remaining()
  local row, col = self:cursor()
  if not (rest and item and row and col) then
    return false
  end
  local client = vim.lsp.get_client_by_id(item.client_id)
  local telemetry = require('ouzel.telemetry')
  if how == 'all' then
    local srow, scol = self:mark_position(item.start_mark)
    local erow, ecol = self:mark_position(item.end_mark)
    if erow < row or (erow == row and ecol < col) then
      erow, ecol = row, col
    end
    self:reset()
    local lines = vim.split(item.text, '\n', { plain = true })
    api.nvim_buf_set_text(self.bufnr, srow, scol, erow, ecol, lines)
    local end_row = srow + #lines - 1
    local end_col = (#lines == 1 and scol or 0) + #lines[#lines]
    api.nvim_win_set_cursor(0, { end_row + 1, end_col })
    self:remember_position()
    if client then
      telemetry.accepted(client, self.bufnr, item)
    end
    self:schedule() -- the next suggestion, once the user pauses
    return true
  end
  local piece = how == 'word' and text.next_word(rest) or text.next_line(rest)
  if piece == '' then
    return false
  end
  self:stop_timer()
  self:cancel()
  self:insert_at_cursor(row, col, piece)
  self:remember_position()
  if client then
    telemetry.partially_accepted(client, item, typed .. piece)
  end
  self:render()
  self:schedule()
  return true
end

--- Show the next of several suggestions, or ask for one.
function State:next()
  if #self.items > 1 then
    self.index = self.index % #self.items + 1
    self:render()
  else
    self:request(TRIGGER_INVOKED)
  end
end

-- Module API (current buffer) --------------------------------------------------------------

--- @param client vim.lsp.Client
--- @param bufnr integer
function M.attach(client, bufnr)
  local state = states[bufnr]
  if state and state.client_id == client.id then
    return
  end
  if state then
    state:destroy()
  end
  states[bufnr] = new_state(bufnr, client)
end

--- @param bufnr integer
function M.detach(bufnr)
  if states[bufnr] then
    states[bufnr]:destroy()
  end
end

--- @return ouzel.BufferState?
local function current()
  return states[api.nvim_get_current_buf()]
end

--- @return boolean
function M.accept()
  local state = current()
  return state ~= nil and state:accept('all')
end

--- @return boolean
function M.accept_word()
  local state = current()
  return state ~= nil and state:accept('word')
end

--- @return boolean
function M.accept_line()
  local state = current()
  return state ~= nil and state:accept('line')
end

--- @return boolean dismissed something
function M.dismiss()
  local state = current()
  local had = state ~= nil and state.shown ~= nil
  if state then
    state:reset()
  end
  return had
end

function M.next()
  local state = current()
  if state then
    state:next()
  end
end

--- The suggestion text shown at the cursor, or nil.
--- @return string?
function M.suggestion()
  local state = current()
  return state and state.shown
end

--- Whether a request is waiting for the pause in typing or for the server's answer.
--- @return boolean
function M.busy()
  local state = current()
  if not state then
    return false
  end
  return state.pending ~= nil or (state.timer ~= nil and state.timer:is_active())
end

--- @param on boolean
function M.set_enabled(on)
  M.enabled = on
  if not on then
    for _, state in pairs(states) do
      state:reset()
    end
  end
end

M.namespace = ghost_ns

return M
