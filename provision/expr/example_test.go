package expr_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/edgeacs/edgeacs/provision/expr"
)

func Example() {
	e, err := expr.Parse(`Device.DeviceInfo.UpTime > 3600 and Tags.beta is null`)
	if err != nil {
		panic(err)
	}
	fmt.Println(e)
	fmt.Println(e.Paths())
	env := expr.MapEnv(map[string]expr.Value{
		"Device.DeviceInfo.UpTime": expr.FromCWMP("7200", "xsd:unsignedInt"),
	}, time.Now())
	fmt.Println(e.Eval(env), e.Holds(env))

	_, err = expr.Parse("a = 1 AND\n  b != 2")
	var pe *expr.Error
	if errors.As(err, &pe) {
		fmt.Println(pe.Line, pe.Column, err)
	}
	// Output:
	// Device.DeviceInfo.UpTime > 3600 AND Tags.beta IS NULL
	// [Device.DeviceInfo.UpTime Tags.beta]
	// true true
	// 2 5 line 2, column 5: unexpected '!=' (not equal is written <>)
}
