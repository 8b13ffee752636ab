#!/usr/bin/env zsh
# zsh_complete.zsh FPATH_DIR LINE: the completions zsh offers for LINE
# (the text before the cursor), one per line: WORD, and a tab and what is
# shown for it when zsh shows more than the word (its description).
# An interactive zsh in a pseudo-terminal (zpty) loads the completion
# system with FPATH_DIR first in $fpath, is sent LINE and a Tab, and
# reports what compadd was given, after zsh's own matching, then exits.
# (The technique of zsh-capture-completion: compadd wrapped, a NUL line
# printed before and after the completion.)
zmodload zsh/zpty
local rc=$(mktemp)
cat > $rc <<'SETUP'
PROMPT=
fpath=($ZSH_COMPLETE_DIR $fpath)
autoload -Uz compinit && compinit -u -D
bindkey '^M' undefined
bindkey '^J' undefined
bindkey '^I' complete-word
zstyle ':completion:*' list-grouped false
zstyle ':completion:*' insert-tab false
null-line() { print -rn -- $'\0\n' }
compprefuncs=(null-line)
comppostfuncs=(null-line exit)
compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a __hits __dscr __p
  local __i __tab=$'\t'
  zparseopts -E p:=__p
  if (( $@[(I)-d] )); then __dscr=("${(@P)${@[$((${@[(i)-d]} + 1))]}}"); fi
  builtin compadd -A __hits -D __dscr "$@"
  (( $#__hits )) || return 1
  for (( __i = 1; __i <= $#__hits; __i++ )); do print -r -- "$IPREFIX$__p[2]$__hits[__i]${__dscr[__i]:+$__tab$__dscr[__i]}"; done
}
print ok
SETUP
export ZSH_COMPLETE_DIR=$1
zpty z zsh -f -i
zpty -w z "source ${(q)rc}"
local line
repeat 20; do
  zpty -r z line
  [[ $line == ok* ]] && break
done
[[ $line == ok* ]] || { print -u2 "zsh_complete: the shell did not start"; exit 2 }
zpty -w -n z "$2"$'\t'
integer seen=0 deadline=$(( SECONDS + 10 ))
while (( SECONDS < deadline )); do
  zpty -rt z line || { sleep 0.05; continue }
  line=${line%$'\n'}
  line=${line%$'\r'}
  if [[ $line == *$'\0'* ]]; then
    (( seen++ )) && break || continue
  fi
  (( seen )) && print -r -- $line
done
zpty -d z
rm -f $rc
(( seen == 2 )) || { print -u2 "zsh_complete: no completion finished"; exit 2 }
