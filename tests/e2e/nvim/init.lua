-- A user's whole config for the tests: the plugin on the runtimepath, and one line.
vim.opt.runtimepath:prepend(vim.env.OUZEL_NVIM_PLUGIN)
vim.lsp.enable('ouzel')
