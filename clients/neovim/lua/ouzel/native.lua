--- Ghost text on Neovim 0.12+: `vim.lsp.inline_completion` requests and draws; this module
--- gives it the same keys and reports accepts like the 0.11 engine does.

local api = vim.api
local text = require('ouzel.text')

local M = {}

M.enabled = true

--- Turn Neovim's inline completion on for the buffer (a buffer-wide switch: Neovim takes
--- `bufnr` or `client_id`, not both); `:Ouzel toggle` switches the ouzel client itself.
--- @param client vim.lsp.Client
--- @param bufnr integer
function M.attach(client, bufnr)
  vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
  vim.lsp.inline_completion.enable(M.enabled, { client_id = client.id })
end

--- Neovim drops its per-client state itself when a client detaches.
function M.detach(_) end

--- The native item's range as 0-based (row, byte col) pairs; the cursor when it has none.
--- @param item vim.lsp.inline_completion.Item
--- @return integer, integer, integer, integer
local function item_range(item)
  local range = item.range
  if range then
    return range.start.row, range.start.col, range.end_.row, range.end_.col
  end
  local cursor = api.nvim_win_get_cursor(0)
  return cursor[1] - 1, cursor[2], cursor[1] - 1, cursor[2]
end

--- @param item vim.lsp.inline_completion.Item
--- @return string
local function item_text(item)
  local insert = item.insert_text
  if type(insert) == 'table' then
    return text.snippet_to_text(insert.value)
  end
  return insert
end

--- Accept the current item through `on_accept`, inserting all of it or its next piece.
--- @param how 'all'|'word'|'line'
--- @return boolean accepted
local function accept(how)
  if not M.enabled then
    return false
  end
  return vim.lsp.inline_completion.get({
    on_accept = function(item)
      local client = vim.lsp.get_client_by_id(item.client_id)
      local bufnr = api.nvim_get_current_buf()
      local srow, scol, erow, ecol = item_range(item)
      local cursor = api.nvim_win_get_cursor(0)
      local row, col = cursor[1] - 1, cursor[2]
      local full = item_text(item)
      local typed = table.concat(api.nvim_buf_get_text(bufnr, srow, scol, row, col, {}), '\n')
      if full:sub(1, #typed) ~= typed then
        return
      end
      local rest = full:sub(#typed + 1)
      local piece = how == 'all' and rest
        or how == 'word' and text.next_word(rest)
        or text.next_line(rest)
      local lines = vim.split(piece, '\n', { plain = true })
      if how == 'all' and (erow > row or (erow == row and ecol > col)) then
        api.nvim_buf_set_text(bufnr, row, col, erow, ecol, lines)
      else
        api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
      end
      api.nvim_win_set_cursor(0, {
        row + #lines,
        (#lines == 1 and col or 0) + #lines[#lines],
      })
      if client then
        local raw = { insertText = item.insert_text, command = item.command }
        local wrapped = { command = item.command, raw = raw }
        if how == 'all' then
          require('ouzel.telemetry').accepted(client, bufnr, wrapped)
        else
          require('ouzel.telemetry').partially_accepted(client, wrapped, typed .. piece)
        end
      end
    end,
  })
end

function M.accept()
  return accept('all')
end

function M.accept_word()
  return accept('word')
end

function M.accept_line()
  return accept('line')
end

--- Taking the item with a handler that inserts nothing hides it and cancels its request.
function M.dismiss()
  return vim.lsp.inline_completion.get({ on_accept = function() end })
end

function M.next()
  vim.lsp.inline_completion.select({ count = 1 })
end

--- The native engine draws in its own namespace: a mark there means a suggestion is shown.
--- @return string?
function M.suggestion()
  local ns = api.nvim_get_namespaces()['nvim.lsp.inline_completion']
  if not ns then
    return nil
  end
  local marks = api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true, limit = 1 })
  if #marks == 0 then
    return nil
  end
  local details = marks[1][4] or {}
  local parts = {}
  for _, chunk in ipairs(details.virt_text or {}) do
    table.insert(parts, chunk[1])
  end
  for _, line in ipairs(details.virt_lines or {}) do
    local chunks = {}
    for _, chunk in ipairs(line) do
      table.insert(chunks, chunk[1])
    end
    table.insert(parts, '\n' .. table.concat(chunks))
  end
  return table.concat(parts)
end

--- @param on boolean
function M.set_enabled(on)
  M.enabled = on
  for _, client in ipairs(vim.lsp.get_clients({ name = 'ouzel' })) do
    vim.lsp.inline_completion.enable(on, { client_id = client.id })
  end
end

return M
