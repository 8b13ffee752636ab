-- Shell completion, derived from the parsers --help shows (kapi.parsing's
-- describe), never written by hand. Every shell gets the same model: spec
-- lines, one per word kapi takes in a context,
--
--   CONTEXT <TAB> KIND <TAB> WORDS <TAB> VALUE <TAB> HELP
--
-- CONTEXT: the command words before it ("" for kapi itself, "auth login",
-- "run preflight"); KIND: sub (a subcommand, or a recipe of run), flag,
-- opt (an option that takes a value), arg (a positional argument), topic
-- (a word of kapi help), each with * when it may be given more than once;
-- WORDS: the option's names, or the subcommand, argument or topic; VALUE,
-- what its value is completed with: file, choice:A B C, topic (kapi
-- help's), path (a file when the word looks like a path: it has a / or
-- a ., after a recipe's name or kapi's own words), or nothing.
--
-- The lines of the commands are generated into the script; those of the
-- recipes come from `kapi completion --spec run [RECIPE]` while
-- completing, so recipes added to the recipe path (yours too) complete
-- with their options without generating the script again. Each shell's
-- script reads the lines the same way: an interpreter in that shell's own
-- language, below. lua-argparse's own generator is not used: it completes
-- files for every option that takes a value (--zip, --limit), knows no
-- recipes, and would need the commands as one parser.
local cli = require "kapi.cli"
local parsing = require "kapi.parsing"

local M = {}

-- One line of text, without tabs, for a spec line's HELP.
local function one_line(text)
  return (tostring(text or ""):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- What a value is completed with, by kapi's names for values (FILE,
-- TOPIC: kapi.parsing spells them alike everywhere).
local function value_of(element)
  if element.choices then return "choice:" .. table.concat(element.choices, " ") end
  if element.argname == "FILE" then return "file" end
  if element.argname == "TOPIC" then return "topic" end
  return ""
end

local function line(out, context, kind, words, value, help)
  out[#out + 1] = table.concat({context, kind, words, value or "", one_line(help)}, "\t")
end

--- The spec lines of a parser's description d in context, its
--- subcommands' after them.
function M.lines_of(context, d, out)
  out = out or {}
  local has_verbose = false
  for _, o in ipairs(d.options) do
    if not o.hidden then
      -- An option whose value is optional (--watch, --watch=15m) takes it
      -- only joined by =: the next word is not its value.
      local takes = o.takes_value and not o.value_optional
      line(out, context, (takes and "opt" or "flag") .. (o.repeatable and "*" or ""), table.concat(o.names, " "),
           takes and value_of(o) or "", o.help)
      for _, name in ipairs(o.names) do has_verbose = has_verbose or name == "--verbose" end
    end
  end
  -- --verbose works on every command's line (kapi.cli takes it out first).
  if context ~= "" and not has_verbose then
    line(out, context, "flag*", "--verbose", "", "Log each request on stderr and add the details to errors")
  end
  for _, a in ipairs(d.arguments) do
    line(out, context, "arg" .. (a.max > 1 and "*" or ""), a.argname or a.name, value_of(a), a.help)
  end
  for _, c in ipairs(d.commands) do
    local name = c.name:match("(%S+)$")
    line(out, context, "sub", name, "", c.summary)
    M.lines_of(context == "" and name or (context .. " " .. name), c, out)
  end
  return out
end

-- The raw commands (run, test) have no parser: what they take is said here.
local RAW = {
  run = function(out)
    line(out, "run", "flag", "-h --help", "", "Show this help message and exit")
    line(out, "run", "arg", "RECIPE", "path", "A recipe by name (kapi recipes lists them), or a Lua file")
  end,
  test = function(out)
    line(out, "test", "flag", "-h --help", "", "Show this help message and exit")
    line(out, "test", "arg*", "FILE", "file", "Spec files or directories (busted's options work too)")
  end,
}

--- The spec lines of kapi itself, its interpreter options and every
--- command (not the recipes: see M.recipe_lines).
function M.lines()
  local out = {}
  local help = require "kapi.commands.help"
  for _, o in ipairs(help.INTERPRETER_OPTIONS) do
    line(out, "", o.argname and "opt*" or "flag*", table.concat(o.names, " "), o.file and "file" or "", o.help)
  end
  line(out, "", "arg", "SCRIPT", "path", "A Lua script to run, with its arguments")
  for _, name in ipairs(cli.commands) do
    local command = cli.command(name)
    line(out, "", "sub", name, "", command.summary)
    if command.raw then
      RAW[name](out)
    else
      M.lines_of(name, parsing.describe(parsing.command_parser(name)), out)
    end
  end
  for _, topic in ipairs(help.TOPICS) do line(out, "help", "topic", topic.name, "", topic.summary) end
  return out
end

--- The spec lines of the recipes: each as a subcommand of run, with its
--- options when name is given (a recipe found by name: a file given by
--- its path is a script that may do work when loaded, so it is not).
function M.recipe_lines(name)
  local recipes = require "kapi.recipes"
  local out = {}
  for _, r in ipairs(recipes.list()) do line(out, "run", "sub", r.name, "", r.summary) end
  local path = name and recipes.find(name)
  local recipe = path and recipes.load(path)
  if recipe then
    local ok, d = pcall(function() return parsing.describe(require("kapi.commands.run").parser(recipe, name)) end)
    if ok then M.lines_of("run " .. name, d, out) end
  end
  return out
end

-- Scripts ----------------------------------------------------------------------

local function header(shell, comment)
  return table.concat({
    comment .. " " .. shell .. " completion for kapi " .. require("kapi.core").version .. ", generated by `kapi completion "
      .. shell .. "`",
    comment .. " from the parsers of kapi's commands; recipes and their options (yours too) come from",
    comment .. " `kapi completion --spec run [RECIPE]` as you type, so new recipes need no new script.",
  }, "\n")
end

local BASH = [==[
# The spec lines of kapi's commands (kapi.completion explains them).
_kapi_static_spec() {
    cat <<'KAPI_SPEC_END'
@SPEC@
KAPI_SPEC_END
}

# Candidates that start with $cur, one at a time (never compgen -W, which
# would expand what a recipe's text holds).
_kapi_add() {
    [[ $1 == "$cur"* ]] && COMPREPLY+=("$1")
}

# The fields of a spec line $line into c kd ws v h (read would merge the
# empty ones: a tab is white space to IFS).
_kapi_split() {
    local rest=$line
    c=${rest%%$'\t'*} rest=${rest#*$'\t'}
    kd=${rest%%$'\t'*} rest=${rest#*$'\t'}
    ws=${rest%%$'\t'*} rest=${rest#*$'\t'}
    v=${rest%%$'\t'*} h=${rest#*$'\t'}
}

_kapi_files() {
    local f
    compopt -o filenames 2>/dev/null
    while IFS= read -r f; do COMPREPLY+=("$f"); done < <(compgen -f -- "$cur")
}

_kapi_values() { # the candidates of a VALUE field
    local v
    case $1 in
        file) _kapi_files ;;
        choice:*) for v in ${1#choice:}; do _kapi_add "$v"; done ;;
    esac
}

_kapi() {
    local cur=${COMP_WORDS[COMP_CWORD]} kapi=${COMP_WORDS[0]}
    local -a words=() spec=()
    local i w n ctx="" k=0 line
    COMPREPLY=()
    # The words before the current one, without --verbose (it goes
    # anywhere); a value bash split at = is joined to its option again.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]} n=${#words[@]}
        if ((n)) && [[ $w == = && ${words[n-1]} == --* ]]; then words[n-1]+==; continue; fi
        if ((n)) && [[ ${words[n-1]} == --*= ]]; then words[n-1]+=$w; continue; fi
        [[ $w == --verbose ]] && continue
        words+=("$w")
    done
    # The option whose value is being completed after an =.
    local joined=""
    if [[ $cur == = ]]; then joined=${words[${#words[@]}-1]}; cur=""
    elif ((COMP_CWORD > 1)) && [[ ${COMP_WORDS[COMP_CWORD-1]} == = ]]; then joined=${words[${#words[@]}-1]%=}
    fi
    while IFS= read -r line; do spec+=("$line"); done < <(_kapi_static_spec)
    if [[ ${words[0]} == run || ${words[0]} == help ]]; then
        while IFS= read -r line; do spec+=("$line"); done < <("$kapi" completion --spec run ${words[1]:+"${words[1]}"} 2>/dev/null)
    fi
    local -A sub=() kind=() value=() repeat=()
    local c kd ws v h
    for line in "${spec[@]}"; do
        _kapi_split
        [[ $kd == sub ]] && sub["$c|$ws"]=1
    done
    # The context: the command words at the start.
    while ((k < ${#words[@]})) && [[ -n ${sub["$ctx|${words[k]}"]} ]]; do
        ctx=${ctx:+$ctx }${words[k]}
        ((k++))
    done
    local -a opts=() args=() subs=() topics=()
    for line in "${spec[@]}"; do
        _kapi_split
        [[ $c == "$ctx" ]] || continue
        case $kd in
            sub) subs+=("$ws") ;;
            topic) topics+=("$ws") ;;
            arg*) args+=("$kd"$'\t'"$v") ;;
            *) for n in $ws; do
                   opts+=("$n"); kind[$n]=${kd%\*}; value[$n]=$v
                   [[ $kd == *\* ]] && repeat[$n]=1
               done ;;
        esac
    done
    # What came after the context: options used, positionals, and whether
    # the last word is an option waiting for its value.
    local -A used=()
    local npos=0 waiting="" rest=""
    for ((i = k; i < ${#words[@]}; i++)); do
        w=${words[i]}
        if [[ -n $waiting ]]; then waiting=""; continue; fi
        if [[ -z $rest && $w == -?* ]]; then
            [[ $w == -- ]] && { rest=1; continue; }
            used[${w%%=*}]=1
            [[ $w != *=* && ${kind[$w]} == opt ]] && waiting=$w
        else
            ((npos++))
        fi
    done
    [[ -n $joined ]] && waiting=$joined
    if [[ -n $waiting ]]; then
        _kapi_values "${value[$waiting]}"
        return 0
    fi
    if [[ -z $rest && $cur == -* ]]; then
        for n in "${opts[@]}"; do
            [[ -n ${used[$n]} && -z ${repeat[$n]} ]] && continue
            _kapi_add "$n"
        done
        return 0
    fi
    if ((npos == 0)); then
        for n in "${subs[@]}"; do _kapi_add "$n"; done
    fi
    # The positional argument the current word is: the one at its place,
    # or the last when that one takes any number.
    local arg="" kv
    for ((i = 0; i < ${#args[@]}; i++)); do
        if ((i == npos)) || [[ $i == $((${#args[@]} - 1)) && ${args[i]} == arg\** && npos -ge i ]]; then
            arg=${args[i]}; break
        fi
    done
    kv=${arg#*$'\t'}
    case $kv in
        topic)
            if ((npos == 0)); then
                for n in "${topics[@]}"; do _kapi_add "$n"; done
                for line in "${spec[@]}"; do
                    _kapi_split
                    [[ $kd == sub && ( $c == "" || $c == run ) ]] && _kapi_add "$ws"
                done
            elif ((npos == 1)); then
                for line in "${spec[@]}"; do
                    _kapi_split
                    [[ $kd == sub && $c == "${words[k]}" ]] && _kapi_add "$ws"
                done
            fi ;;
        path) [[ $cur == */* || $cur == .* || $cur == *.lua ]] && _kapi_files ;;
        '') ;;
        *) [[ -n $arg ]] && _kapi_values "$kv" ;;
    esac
    return 0
}

complete -F _kapi kapi
]==]

local ZSH = [==[
#compdef kapi

# The spec lines of kapi's commands (kapi.completion explains them).
_kapi_static_spec() {
    cat <<'KAPI_SPEC_END'
@SPEC@
KAPI_SPEC_END
}

_kapi() {
    local cur=${words[CURRENT]} kapi=${words[1]}
    local -a before spec
    local w i ctx="" k=1 line
    for w in "${(@)words[2,CURRENT-1]}"; do
        [[ $w == --verbose ]] || before+=("$w")
    done
    spec=("${(@f)$(_kapi_static_spec)}")
    if [[ $before[1] == run || $before[1] == help ]]; then
        spec+=("${(@f)$("$kapi" completion --spec run ${before[2]:+"$before[2]"} 2>/dev/null)}")
    fi
    local -A sub kind value repeat used
    local -a f
    for line in "${spec[@]}"; do
        f=("${(@ps:\t:)line}")
        [[ $f[2] == sub ]] && sub[$f[1]\|$f[3]]=1
    done
    while (( k <= $#before )) && [[ -n ${sub[$ctx\|$before[k]]} ]]; do
        ctx=${ctx:+$ctx }$before[k]
        (( k++ ))
    done
    local -a opts subs topics args described
    local n
    for line in "${spec[@]}"; do
        f=("${(@ps:\t:)line}")
        [[ $f[1] == "$ctx" ]] || continue
        case $f[2] in
            sub) subs+=("${f[3]//:/\\:}:$f[5]") ;;
            topic) topics+=("${f[3]//:/\\:}:$f[5]") ;;
            arg*) args+=("$f[2]"$'\t'"$f[4]") ;;
            *) for n in ${(s: :)f[3]}; do
                   opts+=("$n"); described+=("${n//:/\\:}:$f[5]"); kind[$n]=${f[2]%\*}; value[$n]=$f[4]
                   [[ $f[2] == *\* ]] && repeat[$n]=1
               done ;;
        esac
    done
    local npos=0 waiting="" rest=""
    for (( i = k; i <= $#before; i++ )); do
        w=$before[i]
        if [[ -n $waiting ]]; then waiting=""; continue; fi
        if [[ -z $rest && $w == -?* ]]; then
            [[ $w == -- ]] && { rest=1; continue }
            used[${w%%=*}]=1
            [[ $w != *=* && ${kind[$w]} == opt ]] && waiting=$w
        else
            (( npos++ ))
        fi
    done
    if [[ -z $waiting && -z $rest && $cur == --*=* && ${kind[${cur%%=*}]} == opt ]]; then
        waiting=${cur%%=*}
        compset -P '*='
    fi
    if [[ -n $waiting ]]; then
        _kapi_values "${value[$waiting]}"
        return
    fi
    if [[ -z $rest && $cur == -* ]]; then
        local -a shown
        for (( i = 1; i <= $#opts; i++ )); do
            [[ -n ${used[$opts[i]]} && -z ${repeat[$opts[i]]} ]] && continue
            shown+=("$described[i]")
        done
        _describe -t options option shown
        return
    fi
    local ret=1
    if (( npos == 0 && $#subs )); then
        _describe -t commands command subs && ret=0
    fi
    local arg=""
    for (( i = 1; i <= $#args; i++ )); do
        if (( i == npos + 1 )) || [[ $i == $#args && $args[i] == arg\** && npos -ge i-1 ]]; then
            arg=$args[i]; break
        fi
    done
    case ${arg#*$'\t'} in
        topic)
            local -a names
            if (( npos == 0 )); then
                names=("${topics[@]}")
                for line in "${spec[@]}"; do
                    f=("${(@ps:\t:)line}")
                    [[ $f[2] == sub && ( -z $f[1] || $f[1] == run ) ]] && names+=("${f[3]//:/\\:}:$f[5]")
                done
            elif (( npos == 1 )); then
                for line in "${spec[@]}"; do
                    f=("${(@ps:\t:)line}")
                    [[ $f[2] == sub && $f[1] == "$before[k]" ]] && names+=("${f[3]//:/\\:}:$f[5]")
                done
            fi
            (( $#names )) && _describe -t topics topic names && ret=0 ;;
        path) [[ $cur == */* || $cur == .* || $cur == *.lua ]] && _files && ret=0 ;;
        '') ;;
        *) [[ -n $arg ]] && _kapi_values "${arg#*$'\t'}" && ret=0 ;;
    esac
    return ret
}

_kapi_values() { # the candidates of a VALUE field
    case $1 in
        file) _files ;;
        choice:*) local -a choices=(${(s: :)${1#choice:}}); compadd -a choices ;;
        *) return 1 ;;
    esac
}

if [[ $funcstack[1] == _kapi ]]; then
    _kapi "$@"
else
    compdef _kapi kapi
fi
]==]

local FISH = [==[
# The spec lines of kapi's commands (kapi.completion explains them).
function __kapi_static_spec
    printf '%s\n' @SPEC@
end

function __kapi_values --argument-names value current
    switch $value
        case file
            __fish_complete_path $current
        case 'choice:*'
            string split ' ' -- (string replace 'choice:' '' -- $value)
    end
end

function __kapi_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l kapi $tokens[1]
    set -l before
    for w in $tokens[2..-1]
        test "$w" = --verbose; or set -a before $w
    end
    set -l spec (__kapi_static_spec)
    if test (count $before) -ge 1; and contains -- $before[1] run help
        set -a spec ($kapi completion --spec run $before[2] 2>/dev/null)
    end
    set -l subs
    for line in $spec
        set -l f (string split \t -- $line)
        test "$f[2]" = sub; and set -a subs "$f[1]|$f[3]"
    end
    set -l ctx ''
    set -l k 1
    while test $k -le (count $before); and contains -- "$ctx|$before[$k]" $subs
        if test -z "$ctx"
            set ctx $before[$k]
        else
            set ctx "$ctx $before[$k]"
        end
        set k (math $k + 1)
    end
    set -l opts; set -l kinds; set -l values; set -l helps; set -l args; set -l words
    for line in $spec
        set -l f (string split \t -- $line)
        test "$f[1]" = "$ctx"; or continue
        switch $f[2]
            case sub topic
                set -a words "$f[2]"\t"$f[3]"\t"$f[5]"
            case 'arg*'
                set -a args "$f[2]"\t"$f[4]"
            case '*'
                for n in (string split ' ' -- $f[3])
                    set -a opts $n; set -a kinds $f[2]; set -a values "$f[4]"; set -a helps "$f[5]"
                end
        end
    end
    set -l used; set -l npos 0; set -l waiting ''; set -l rest ''
    for w in $before[$k..-1]
        if test -n "$waiting"
            set waiting ''
            continue
        end
        if test -z "$rest"; and string match -qr -- '^-.' $w
            if test "$w" = --
                set rest 1
                continue
            end
            set -a used (string replace -r -- '=.*' '' $w)
            set -l i (contains -i -- $w $opts)
            and string match -q -- 'opt*' $kinds[$i]; and set waiting $w
        else
            set npos (math $npos + 1)
        end
    end
    if test -n "$waiting"
        __kapi_values $values[(contains -i -- $waiting $opts)] $cur
        return
    end
    if test -z "$rest"; and string match -qr -- '^--[^=]+=' $cur
        set -l name (string replace -r -- '=.*' '' $cur)
        set -l i (contains -i -- $name $opts)
        if test -n "$i"; and string match -q -- 'opt*' $kinds[$i]
            for v in (__kapi_values $values[$i] (string replace -r -- '^[^=]*=' '' $cur))
                echo "$name=$v"
            end
        end
        return
    end
    if test -z "$rest"; and string match -q -- '-*' $cur
        for i in (seq (count $opts))
            if contains -- $opts[$i] $used; and not string match -q -- '*\*' $kinds[$i]
                continue
            end
            echo $opts[$i]\t$helps[$i]
        end
        return
    end
    if test $npos -eq 0
        for w in $words
            set -l f (string split \t -- $w)
            test "$f[1]" = sub; and echo $f[2]\t$f[3]
        end
    end
    set -l arg ''
    set -l n (count $args)
    for i in (seq $n)
        set -l f (string split \t -- $args[$i])
        if test $i -eq (math $npos + 1); or begin; test $i -eq $n; and test "$f[1]" = 'arg*'; and test $npos -ge (math $i - 1); end
            set arg "$f[2]"
            break
        end
    end
    switch "$arg"
        case topic
            if test $npos -eq 0
                for w in $words
                    set -l f (string split \t -- $w)
                    test "$f[1]" = topic; and echo $f[2]\t$f[3]
                end
                for line in $spec
                    set -l f (string split \t -- $line)
                    if test "$f[2]" = sub; and contains -- "$f[1]" '' run
                        echo $f[3]\t$f[5]
                    end
                end
            else if test $npos -eq 1
                for line in $spec
                    set -l f (string split \t -- $line)
                    if test "$f[2]" = sub; and test "$f[1]" = "$before[$k]"
                        echo $f[3]\t$f[5]
                    end
                end
            end
        case path
            string match -qr -- '/|^\.|\.lua$' $cur; and __fish_complete_path $cur
        case ''
        case '*'
            __kapi_values $arg $cur
    end
end

complete -c kapi -e
complete -c kapi -f -a '(__kapi_complete)'
]==]

-- A shell's script with the spec lines in it.
local function fish_quote(text)
  return "'" .. text:gsub("[\\']", "\\%0") .. "'"
end

function M.script(shell)
  local spec = M.lines()
  if shell == "bash" then
    return header("bash", "#") .. "\n" .. BASH:gsub("@SPEC@", function() return table.concat(spec, "\n") end)
  elseif shell == "zsh" then
    return (ZSH:gsub("^#compdef kapi\n", function() return "#compdef kapi\n" .. header("zsh", "#") .. "\n" end)
               :gsub("@SPEC@", function() return table.concat(spec, "\n") end))
  elseif shell == "fish" then
    local quoted = {}
    for i, l in ipairs(spec) do quoted[i] = fish_quote(l) end
    return header("fish", "#") .. "\n" .. FISH:gsub("@SPEC@", function() return table.concat(quoted, " \\\n        ") end)
  end
  error("no completion for the shell " .. tostring(shell), 2)
end

return M
