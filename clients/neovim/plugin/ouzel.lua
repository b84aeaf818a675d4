-- ouzel: AI ghost text from a self-hosted language server. See `:help ouzel`.
--
-- Startup cost is a user command, ten <Plug> mappings, four highlight links and four
-- autocmds; the Lua modules load when an ouzel client attaches or a command runs. Start the
-- server with `vim.lsp.enable('ouzel')` (the config is in lsp/ouzel.lua).

if vim.g.loaded_ouzel then
  return
end
vim.g.loaded_ouzel = true

if vim.fn.has('nvim-0.11') == 0 then
  vim.api.nvim_echo({ { 'ouzel: needs Neovim 0.11 or newer', 'WarningMsg' } }, true, {})
  return
end

vim.api.nvim_create_user_command('Ouzel', function(args)
  require('ouzel.commands').run(args)
end, {
  nargs = '*',
  range = true,
  desc = 'ouzel: status, index, toggle, chat, agent or cancel',
  complete = function(lead, line)
    return require('ouzel.commands').complete(lead, line)
  end,
})

for plug, fn in pairs({
  ['ouzel-accept'] = 'accept',
  ['ouzel-accept-word'] = 'accept_word',
  ['ouzel-accept-line'] = 'accept_line',
  ['ouzel-dismiss'] = 'dismiss',
  ['ouzel-next'] = 'next',
}) do
  vim.keymap.set('i', ('<Plug>(%s)'):format(plug), function()
    require('ouzel')[fn]()
  end, { silent = true, desc = 'ouzel: ' .. fn:gsub('_', ' ') })
end

-- Normal-mode actions (no default keys): the chat, and stopping streamed work.
vim.keymap.set('n', '<Plug>(ouzel-chat)', '<Cmd>Ouzel chat<CR>', { desc = 'ouzel: chat' })
vim.keymap.set('x', '<Plug>(ouzel-chat)', ':Ouzel chat<CR>', { desc = 'ouzel: chat about it' })
vim.keymap.set('n', '<Plug>(ouzel-agent)', '<Cmd>Ouzel agent<CR>', { desc = 'ouzel: agent' })
vim.keymap.set('x', '<Plug>(ouzel-agent)', ':Ouzel agent<CR>', { desc = 'ouzel: agent on it' })
vim.keymap.set('n', '<Plug>(ouzel-cancel)', '<Cmd>Ouzel cancel<CR>', { desc = 'ouzel: cancel' })

local group = vim.api.nvim_create_augroup('ouzel', { clear = true })

local function highlights()
  vim.api.nvim_set_hl(0, 'OuzelGhostText', { link = 'Comment', default = true })
  vim.api.nvim_set_hl(0, 'OuzelGhostTextHint', { link = 'NonText', default = true })
  vim.api.nvim_set_hl(0, 'OuzelDiffAdd', { link = 'DiffAdd', default = true })
  vim.api.nvim_set_hl(0, 'OuzelDiffDelete', { link = 'DiffDelete', default = true })
end
highlights()
vim.api.nvim_create_autocmd('ColorScheme', { group = group, callback = highlights })

local function ouzel_client(args)
  local client = vim.lsp.get_client_by_id(args.data.client_id)
  return client and client.name == 'ouzel' and client or nil
end

vim.api.nvim_create_autocmd('LspAttach', {
  group = group,
  callback = function(args)
    local client = ouzel_client(args)
    if client then
      require('ouzel').attach(client, args.buf)
    end
  end,
})

vim.api.nvim_create_autocmd('LspDetach', {
  group = group,
  callback = function(args)
    if ouzel_client(args) then
      require('ouzel').detach(args.buf)
    end
  end,
})

vim.api.nvim_create_autocmd('LspProgress', {
  group = group,
  callback = function(args)
    if ouzel_client(args) then
      require('ouzel.status').on_progress(args.data.client_id, args.data.params)
    end
  end,
})
