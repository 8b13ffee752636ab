-- Rule sets, one per recipient: kapi.rules.kroger (item-format rules KR-...).
return {kroger = require "kapi.rules.kroger"}
