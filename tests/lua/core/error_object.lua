-- exit: 1
-- A non-string error object is reported like lua.c does.
error(setmetatable({}, { __tostring = function() return 'custom error object' end }))
