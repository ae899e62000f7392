package h323test

import "unicode/utf16"

func fromUTF16(b []uint16) []rune { return utf16.Decode(b) }
