--- Tell the server what the user did with a suggestion (it records this locally only).

local M = {}

--- The whole suggestion was inserted: run the item's command, as the LSP spec asks.
--- @param client vim.lsp.Client
--- @param bufnr integer
--- @param item {command?: table}
function M.accepted(client, bufnr, item)
  if type(item.command) == 'table' and item.command.command then
    client:exec_cmd(item.command, { bufnr = bufnr })
  end
end

--- Part of the suggestion was inserted.
--- @param client vim.lsp.Client
--- @param bufnr integer
--- @param item {raw: table}
--- @param accepted string the text of the item now in the buffer
function M.partially_accepted(client, bufnr, item, accepted)
  local _ = client, bufnr, item, accepted
end

return M
