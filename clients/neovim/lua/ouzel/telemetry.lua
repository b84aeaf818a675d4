--- Tell the server what the user did with a suggestion (it records this locally only), the
--- way Copilot's language server is told:
--- - shown: notification `textDocument/didShowCompletion` `{ item }`, once per item;
--- - accepted: the item's command (`ouzel.accepted`), as the LSP spec asks;
--- - partly accepted (a word, a line): notification
---   `textDocument/didPartiallyAcceptCompletion` `{ item, acceptedLength }`, the length of the
---   item's text now in the buffer in UTF-16 code units.

local M = {}

--- @param item {raw: table}
--- @return table
local function wire_item(item)
  return item.raw or {}
end

--- @param client vim.lsp.Client
--- @param item {raw: table}
function M.shown(client, item)
  client:notify('textDocument/didShowCompletion', { item = wire_item(item) })
end

--- The whole suggestion was inserted.
--- @param client vim.lsp.Client
--- @param bufnr integer
--- @param item {command?: table}
function M.accepted(client, bufnr, item)
  local command = item.command
  if type(command) == 'table' and type(command.command) == 'string' then
    client:exec_cmd(command, { bufnr = bufnr })
  end
end

--- Part of the suggestion was inserted.
--- @param client vim.lsp.Client
--- @param item {raw: table}
--- @param accepted string the start of the item's text that is now in the buffer
function M.partially_accepted(client, item, accepted)
  client:notify('textDocument/didPartiallyAcceptCompletion', {
    item = wire_item(item),
    acceptedLength = vim.str_utfindex(accepted, 'utf-16'),
  })
end

return M
