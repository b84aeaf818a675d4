--- Small text helpers: positions, partial accepts, display.

local M = {}

--- An LSP position as a 0-based row and byte column of the buffer, or nil when the row is
--- outside the buffer. A character past the end of the line is clamped to the line's end.
--- @param bufnr integer
--- @param position {line: integer, character: integer}
--- @param encoding string 'utf-8'|'utf-16'|'utf-32'
--- @return integer? row
--- @return integer? col
function M.byte_position(bufnr, position, encoding)
  local row, character = position.line, position.character
  if type(row) ~= 'number' or type(character) ~= 'number' or row < 0 or character < 0 then
    return nil, nil
  end
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1]
  if line == nil then
    return nil, nil
  end
  if encoding == 'utf-8' then
    return row, math.min(character, #line)
  end
  return row, vim.str_byteindex(line, encoding, character, false)
end

-- Bytes of a "word" for partial accepts: letters, digits, underscore, and any non-ASCII
-- byte (so é, 名 or an identifier in any script stays whole).
local WORD = '[%w_\128-\255]'

--- The next word of a suggestion: leading blanks and one identifier, or one run of
--- punctuation; a suggestion that starts with a line break gives the break and the next
--- line's indentation.
--- @param rest string
--- @return string
function M.next_word(rest)
  return rest:match('^\r?\n[ \t]*')
    or rest:match('^[ \t]*' .. WORD .. '+')
    or rest:match('^[ \t]*[^%w_\128-\255%s]+')
    or rest:match('^[ \t]+')
    or rest:sub(1, 1)
end

--- The rest of the current line of a suggestion; when it starts with a line break, the break
--- and the next line.
--- @param rest string
--- @return string
function M.next_line(rest)
  local line = rest:match('^[^\n]+')
  if line then
    return line
  end
  return rest:match('^\n[^\n]*') or ''
end

--- Virtual text shows a tab as `^I`: show the spaces it stands for instead.
--- @param s string
--- @param tabstop integer
--- @return string
function M.expand_tabs(s, tabstop)
  return (s:gsub('\t', string.rep(' ', tabstop)))
end

--- Plain text of an LSP snippet: placeholders keep their default text, tab stops vanish.
--- @param snippet string
--- @return string
function M.snippet_to_text(snippet)
  local out = snippet
  for _ = 1, 10 do -- placeholders can nest
    local replaced
    out, replaced = out:gsub('%${%d+:([^{}]*)}', '%1')
    if replaced == 0 then
      break
    end
  end
  out = out:gsub('%${%d+|([^,|}]*)[^}]*|}', '%1') -- choices: the first one
  out = out:gsub('%${%d+}', ''):gsub('%$%d+', '')
  return (out:gsub('\\([%$}\\])', '%1'))
end

return M
