// Command asn1gen generates Go types with ALIGNED PER Encode/Decode
// methods (package internal/asn1per) from ASN.1 modules: H.225.0
// (H323-MESSAGES), H.245 (MULTIMEDIA-SYSTEM-CONTROL) and H.235
// (H235-SECURITY-MESSAGES), for internal/h323/h225 and internal/h323/h245.
//
// Usage:
//
//	go run ./tools/asn1gen -ref ../shared/ref/asn1 -out internal/h323
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	ref := flag.String("ref", "../shared/ref/asn1", "directory holding the ITU-T ASN.1 modules")
	out := flag.String("out", "internal/h323", "output directory (h225/ and h245/ are written below it)")
	flag.Parse()
	if err := run(*ref, *out); err != nil {
		fmt.Fprintln(os.Stderr, "asn1gen:", err)
		os.Exit(1)
	}
}
